import type { DownloadSpec } from "../../src/transfer/download.ts";
import { testCrypto } from "./transfer-crypto.ts";

/** A 1 MiB download from a file server that exists only in the test: change what the test is about. */
export function downloadSpec(overrides: Partial<DownloadSpec> = {}): DownloadSpec {
  return {
    name: "f",
    size: 1 << 20,
    offset: 0,
    length: 1 << 20,
    sha256: "ab".repeat(32),
    ip: "127.0.0.1",
    port: 9,
    display: "s",
    crypto: testCrypto(),
    segmentBytes: 1400,
    windowSegments: 8,
    ackEvery: 2,
    idleTimeoutMs: 10_000,
    ...overrides,
  };
}
