import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Catalog } from "../../src/files/catalog.ts";
import { FileService } from "../../src/transfer/file-service.ts";
import { decodeProbeAck, encodeProbe, MIN_PROBE_BYTES, PacketType, readHeader, type Greeting } from "../../src/transfer/core/wire.ts";
import { rawRequest } from "../support/raw-request.ts";

/**
 * The file server shares one UDP socket among all its clients, so an ICMP "port unreachable" caused
 * by one of them (a client gone, a probe socket closed before the last answers came) is queued on
 * that socket, and the kernel reports it by failing the next send, whoever it is for. Found as a
 * 100-file fetch that now and then took 0.6 s instead of 0.27: the first file's ACCEPT was lost to
 * the probe's late answers, and the client asked again only after 500 ms.
 */
describe("file server socket errors", () => {
  test("an ICMP error left by another client does not cost the next client its ACCEPT", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ftx-icmp-"));
    const content = Buffer.alloc(100_000, 7);
    writeFileSync(join(dir, "a.bin"), content);
    const catalog = await Catalog.open(dir, { watch: false });
    const service = await FileService.start({ host: "127.0.0.1", port: 0, catalog });
    const gone = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    const answers: number[] = [];
    let addressToken: Greeting | undefined;
    const client = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port: 0,
      binaryType: "uint8array",
      socket: {
        data(_s, data) {
          const type = readHeader(data).type;
          if (type === PacketType.ProbeAck) addressToken = decodeProbeAck(data).greeting;
          else answers.push(type);
        },
      },
    });
    try {
      const deadline = Date.now() + 10_000;
      while (!catalog.get("a.bin") && Date.now() < deadline) await Bun.sleep(20);
      const entry = catalog.get("a.bin")!;
      expect(entry).toBeDefined();
      // The client's address token first, as ftx fetch gets it (a REQUEST without one draws a RETRY).
      client.send(encodeProbe(7, MIN_PROBE_BYTES, 0), service.port, "127.0.0.1");
      for (let i = 0; i < 50 && !addressToken; i++) await Bun.sleep(10);
      expect(addressToken).toBeDefined();
      // Both datagrams reach the server before it reads either: it answers the probe to a port that
      // is closed by then (the kernel queues the ICMP error), and then the REQUEST.
      gone.send(encodeProbe(1, 1200, 0), service.port, "127.0.0.1");
      gone.close();
      const request = rawRequest(42, { segmentBytes: 1200, windowSegments: 8, sha256: Buffer.from(entry.sha256, "hex"), name: "a.bin" }, addressToken).bytes;
      client.send(request, service.port, "127.0.0.1");
      // No retransmission here: the first ACCEPT must arrive (a client would wait 500 ms to ask again).
      for (let i = 0; i < 50 && !answers.includes(PacketType.Accept); i++) await Bun.sleep(10);
      expect(answers).toContain(PacketType.Accept);
    } finally {
      client.close();
      service.stop();
      catalog.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
