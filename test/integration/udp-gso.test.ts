import { describe, expect, test } from "bun:test";
import { enableGro, GsoSender, SendResult } from "../../src/net/udp-gso.ts";

/** A receiving socket that keeps what each read returned. */
async function receiver(hostname: string, gro: boolean) {
  const reads: Uint8Array[] = [];
  const socket = await Bun.udpSocket({
    hostname,
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(_s, data) {
        reads.push(data.slice());
      },
    },
  });
  if (gro) expect(enableGro(socket)).toBe(true);
  const total = () => reads.reduce((n, r) => n + r.byteLength, 0);
  const until = async (bytes: number) => {
    for (let i = 0; i < 200 && total() < bytes; i++) await Bun.sleep(5);
  };
  return { socket, reads, until };
}

/** 5 datagrams of 1,000 bytes and one of 300, each filled with its own index. */
function run(): Uint8Array {
  const bytes = new Uint8Array(5 * 1000 + 300);
  for (let i = 0; i < 6; i++) bytes.fill(i + 1, i * 1000, Math.min(bytes.byteLength, (i + 1) * 1000));
  return bytes;
}

describe("UDP segmentation offload through bun:ffi on Bun's socket", () => {
  test("a run sent in one call arrives as its datagrams, the last shorter", async () => {
    const rx = await receiver("127.0.0.1", false);
    const tx = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    try {
      const gso = GsoSender.open(tx, 4);
      expect(gso).toBeDefined();
      expect(gso!.send(run(), 1000, 6, "127.0.0.1", rx.socket.port)).toBe(SendResult.Sent);
      await rx.until(5300);
      expect(rx.reads.map((r) => r.byteLength)).toEqual([1000, 1000, 1000, 1000, 1000, 300]);
      expect(rx.reads.map((r) => r[0])).toEqual([1, 2, 3, 4, 5, 6]);
      expect(rx.reads.every((r) => r.every((b) => b === r[0]))).toBe(true);
    } finally {
      rx.socket.close();
      tx.close();
    }
  });

  test("a receiver with UDP_GRO may read the run whole: the same bytes in order, in fewer reads", async () => {
    const rx = await receiver("127.0.0.1", true);
    const tx = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    try {
      const gso = GsoSender.open(tx, 4)!;
      const bytes = run();
      expect(gso.send(bytes, 1000, 6, "127.0.0.1", rx.socket.port)).toBe(SendResult.Sent);
      await rx.until(bytes.byteLength);
      expect(rx.reads.length).toBeLessThan(6);
      expect(Buffer.concat(rx.reads).equals(Buffer.from(bytes))).toBe(true);
    } finally {
      rx.socket.close();
      tx.close();
    }
  });

  test("from an IPv6 socket: to an IPv6 peer, and to an IPv4 peer by its mapped address", async () => {
    const rx6 = await receiver("::1", false);
    const rx4 = await receiver("127.0.0.1", false);
    const tx = await Bun.udpSocket({ hostname: "::", port: 0 });
    try {
      const gso = GsoSender.open(tx, 6)!;
      expect(gso.send(run(), 1000, 6, "::1", rx6.socket.port)).toBe(SendResult.Sent);
      expect(gso.send(run(), 1000, 6, "::ffff:127.0.0.1", rx4.socket.port)).toBe(SendResult.Sent);
      await rx6.until(5300);
      await rx4.until(5300);
      expect(rx6.reads.length).toBe(6);
      expect(rx4.reads.length).toBe(6);
    } finally {
      rx6.socket.close();
      rx4.socket.close();
      tx.close();
    }
  });

  test("a peer that went away (ICMP port unreachable) costs nothing to the next peer; a name is no address", async () => {
    const gone = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    const port = gone.port;
    gone.close();
    const rx = await receiver("127.0.0.1", false);
    const errors: string[] = [];
    // Bun reads the kernel's error queue and reports the ICMP error here, as the file server's socket does.
    const tx = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { error: (err) => void errors.push(String(err)) } });
    try {
      const gso = GsoSender.open(tx, 4)!;
      expect(gso.send(run(), 1000, 6, "127.0.0.1", port)).toBe(SendResult.Sent);
      await Bun.sleep(20); // the ICMP error is queued on the socket by now
      expect(gso.send(run(), 1000, 6, "127.0.0.1", rx.socket.port)).toBe(SendResult.Sent);
      await rx.until(5300);
      expect(rx.reads.length).toBe(6);
      expect(gso.send(run(), 1000, 6, "localhost", rx.socket.port)).toBe(SendResult.Sent);
      expect(gso.lastError?.errno).toBe(22);
    } finally {
      rx.socket.close();
      tx.close();
    }
  });
});
