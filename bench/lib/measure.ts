/** Small measurements shared by the scenarios: a process's CPU and peak RSS from /proc, a median. */
import { readFileSync } from "node:fs";

export function procStat(pid: number): { cpuSeconds: number; peakRssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const ticks = Number(stat[11]) + Number(stat[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return { cpuSeconds: ticks / 100, peakRssMiB: Number(status.match(/VmHWM:\s+(\d+)/)![1]) / 1024 };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
