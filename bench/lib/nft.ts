/**
 * Loss made by the kernel: nftables rules that drop a share of the packets of one port (or address),
 * both directions, in the input hook, deleted afterwards. No CPU of ours, unlike the impairment relay.
 */
/** Random loss on one port, both directions, with nftables; undefined when nft is unavailable. */
export function nftLoss(port: number, permille: number, proto: "udp" | "tcp" = "udp"): { remove: () => void } | undefined {
  return nftDrop(`${proto}_${port}`, [`${proto} dport ${port}`, `${proto} sport ${port}`], permille);
}

/** Drop `permille`/1000 of the packets matching each nftables expression, in the input hook; undefined if nft fails. */
export function nftDrop(name: string, matches: string[], permille: number): { remove: () => void } | undefined {
  const table = `ftx_bench_${process.pid}_${name.replace(/[^a-z0-9_]/gi, "_")}`;
  const rules = [
    `add table inet ${table}`,
    `add chain inet ${table} input { type filter hook input priority 0 ; policy accept ; }`,
    ...matches.map((m) => `add rule inet ${table} input ${m} numgen random mod 1000 < ${permille} drop`),
  ].join("\n");
  const r = Bun.spawnSync(["nft", "-f", "-"], { stdin: Buffer.from(rules), stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) {
    console.error(`  (nftables unavailable: ${r.stderr.toString().trim() || "exit " + r.exitCode}; using the relay)`);
    return undefined;
  }
  return { remove: () => void Bun.spawnSync(["nft", "delete", "table", "inet", table]) };
}
