import { existsSync } from "node:fs";
import { FtxError, errorMessage } from "../errors.ts";
import { destinationFor, prepareOutputDir } from "../files/destination.ts";
import { PART_SUFFIX, unsafeNameReason } from "../files/core/safe-name.ts";
import { queryMaster } from "../index/index-client.ts";
import type { ListEntry } from "../index/core/messages.ts";
import { silentLogger, type Logger } from "../log.ts";
import type { HostPort } from "../net/address.ts";
import { FileFetch, type PathInfo } from "./file-fetch.ts";
import { startWriterThread } from "../transfer/part-file.ts";
import { TransferClient } from "../transfer/transfer-client.ts";
import { transferCrypto } from "../transfer/transfer-crypto.ts";
import type { AddressTokenCache } from "../transfer/address-token-cache.ts";
import { Slots } from "../util/slots.ts";
import { HELLO_GIVE_UP_MS, probePath } from "../transfer/path-probe.ts";
import { clampSegmentBytes, INTERNET_DATAGRAM_BYTES, segmentBytesFor } from "../transfer/core/wire.ts";

export interface FetchOptions {
  masters: HostPort[];
  files: string[];
  outDir: string;
  token?: string;
  logger?: Logger;
  /** Pin the segment (datagram payload) size; default: large on loopback, internet-safe elsewhere. */
  segmentBytes?: number;
  concurrency?: number;
  idleTimeoutMs?: number;
  /** How long to keep looking for a server when none can deliver a file (default 15 s). */
  retryForMs?: number;
  progress?: ProgressSink;
  /** Source address for the UDP socket. */
  bindHost?: string;
}

export interface FileResult {
  name: string;
  ok: boolean;
  bytes: number | null;
  sha256: string | null;
  seconds: number;
  error: string | null;
  /** How many file servers delivered bytes of it (0 when it failed); an addition to the contract's keys. */
  servers: number;
}

/** What a progress display needs; every method is optional work for the caller. */
export interface ProgressSink {
  begin(name: string, size: number, alreadyHave: number): void;
  update(name: string, bytes: number): void;
  end(result: FileResult): void;
}

export const INTERNET_SEGMENT_BYTES = segmentBytesFor(INTERNET_DATAGRAM_BYTES);
/** With no server able to deliver a file, the index is asked again for this long before the file fails. */
const DEFAULT_RETRY_FOR_MS = 15_000;

/** Probed paths by server, for this process: every file from one server uses one probe. */
const probed = new Map<string, Promise<PathInfo>>();

/**
 * The path to a server: segments of the largest datagram it delivered in a probe, less our header,
 * packet number and tag (the internet-safe size when no large probe came back), the probe's round trip
 * and the server's greeting (kept in `tokens` for the sessions). A server that answers not even the small first
 * probe is `unanswered`, and that is not remembered: the next session asks again.
 */
function pathFor(server: string, ip: string, port: number, bindHost: string | undefined, logger: Logger, tokens: AddressTokenCache, giveUpMs: number): Promise<PathInfo> {
  let result = probed.get(server);
  if (!result) {
    const probing = probePath(ip, port, bindHost, giveUpMs).then((probe): PathInfo => {
      if ("silent" in probe) {
        probed.delete(server);
        const why = probe.gone === undefined ? "does not answer" : `is gone (${probe.gone})`;
        logger.debug(`path to ${server}: no answer to a small probe (${why})`);
        return { segmentBytes: INTERNET_SEGMENT_BYTES, unanswered: why };
      }
      tokens.slot(ip, port).set(probe.greeting, probe.greetingAt);
      const segmentBytes = clampSegmentBytes(probe.datagramBytes === undefined ? INTERNET_SEGMENT_BYTES : segmentBytesFor(probe.datagramBytes));
      const what =
        probe.datagramBytes !== undefined ? `datagrams of ${probe.datagramBytes} bytes arrive` : probe.interfaceLimited ? `the interface sends no datagram over ${INTERNET_DATAGRAM_BYTES} bytes` : "no large probe answered";
      logger.debug(`path to ${server}: ${what}; ${segmentBytes}-byte segments; round trip ${probe.rttMs.toFixed(2)} ms`);
      return { segmentBytes, rttMs: probe.rttMs };
    });
    result = probing;
    probed.set(server, result);
  }
  return result;
}

/** Glob characters would make the master treat a name as a pattern: ask for everything and filter. */
function patternFor(name: string): string {
  return /[*?[]/.test(name) ? "" : name;
}

/**
 * `ftx fetch`: ask the index where each file is, then download them all at once, each from all of
 * the servers holding its content (FileFetch), carrying on with the others when one fails. Results come back
 * one per name as given, in that order (a name given twice is fetched once).
 */
export async function fetchFiles(opts: FetchOptions): Promise<FileResult[]> {
  const logger = opts.logger ?? silentLogger;
  const names = [...new Set(opts.files)];
  const results = new Map<string, FileResult>();
  const started = performance.now();
  const failNow = (name: string, message: string) => results.set(name, { name, ok: false, bytes: null, sha256: null, seconds: 0, error: message, servers: 0 });

  const safe = names.filter((name) => {
    const reason = unsafeNameReason(name);
    if (reason) failNow(name, `${JSON.stringify(name)} is not a safe name (${reason})`);
    return !reason;
  });
  if (safe.length > 0) startWriterThread(); // its start-up overlaps the master's answer
  let answers: ListEntry[][];
  try {
    answers = safe.length > 0 ? (await queryMaster(opts.masters, safe.map(patternFor), opts.token)).map((a) => a.entries) : [];
  } catch (err) {
    // No index, no downloads: every FILE fails with the reason (and --json still reports each one).
    for (const name of safe) failNow(name, errorMessage(err));
    return opts.files.map((n) => results.get(n)!);
  }
  const outDirReal = await prepareOutputDir(opts.outDir);
  const client = new TransferClient(await transferCrypto(opts.token), logger, opts.bindHost);
  const queue = safe.map((name, i) => ({ name, entries: answers[i]!.filter((e) => e.name === name) }));
  // At most `concurrency` files use the network at once; a file gives its slot up once its bytes are
  // verified, so its sync to disk and rename (5-6 ms for a 1 MiB file here) overlap the next transfer.
  const slots = new Slots(Math.max(1, opts.concurrency ?? 8));
  try {
    await Promise.all(
      queue.map(async (job) => {
        await slots.acquire();
        let held = true;
        const release = () => {
          if (held) slots.release();
          held = false;
        };
        const t0 = performance.now();
        let result: FileResult;
        try {
          const { bytes, sha256, servers } = await fetchOne(client, job.name, job.entries, outDirReal, opts, logger, release);
          result = { name: job.name, ok: true, bytes, sha256, seconds: (performance.now() - t0) / 1000, error: null, servers };
        } catch (err) {
          result = { name: job.name, ok: false, bytes: null, sha256: null, seconds: (performance.now() - t0) / 1000, error: errorMessage(err), servers: 0 };
        } finally {
          release();
        }
        results.set(job.name, result);
        opts.progress?.end(result);
      }),
    );
  } finally {
    client.close();
  }
  logger.debug(`fetched ${names.length} file(s) in ${((performance.now() - started) / 1000).toFixed(2)}s`);
  // One result per FILE as given (a name given twice was fetched once and is reported twice).
  return opts.files.map((n) => results.get(n)!);
}

async function fetchOne(
  client: TransferClient,
  name: string,
  entries: ListEntry[],
  outDirReal: string,
  opts: FetchOptions,
  logger: Logger,
  verified: () => void,
): Promise<{ bytes: number; sha256: string; servers: number }> {
  if (entries.length === 0) throw new FtxError("E_NOT_FOUND", `${name}: not listed by the master (see \`ftx ls\`)`);
  const contents = new Set(entries.map((e) => e.sha256));
  if (contents.size > 1) throw new FtxError("E_AMBIGUOUS", `${name}: listed with ${contents.size} different contents; refusing to guess which one`);
  const entry = trustedEntry(name, entries, logger);
  const dest = await destinationFor(outDirReal, name);
  opts.progress?.begin(name, entry.size, 0);
  // Start with the servers in a random order, so that many clients spread over them.
  const servers = [...entry.servers].sort(() => Math.random() - 0.5);
  const fetch = new FileFetch(
    {
      client,
      logger,
      idleTimeoutMs: opts.idleTimeoutMs ?? 10_000,
      retryForMs: opts.retryForMs ?? DEFAULT_RETRY_FOR_MS,
      pathFor: (server, ip, port) => (opts.segmentBytes !== undefined ? Promise.resolve({ segmentBytes: clampSegmentBytes(opts.segmentBytes) }) : pathFor(server, ip, port, opts.bindHost, logger, client.addressTokens, Math.min(HELLO_GIVE_UP_MS, opts.idleTimeoutMs ?? HELLO_GIVE_UP_MS))),
      lookup: async () => (await queryMaster(opts.masters, [patternFor(name)], opts.token))[0]!.entries.filter((e) => e.name === name),
      progress: opts.progress ? (bytes) => opts.progress!.update(name, bytes) : undefined,
      verified,
    },
    name,
    entry,
    servers,
    dest,
  );
  try {
    return await fetch.run();
  } catch (err) {
    const e = err instanceof FtxError ? err : new FtxError("E_IO", errorMessage(err));
    // A part file that is gone (bad content discarded, no room to start one) holds nothing to resume.
    const kept = existsSync(dest + PART_SUFFIX) ? ` (what arrived is kept in ${name}${PART_SUFFIX}; run the same fetch again to resume)` : "";
    throw new FtxError(e.code, `${name}: ${e.message}${kept}`, { cause: e, detail: e.message });
  }
}

/**
 * One content, possibly announced with different pieces roots (a broken or lying server): the root
 * most servers agree on is trusted, and the servers that disagree are left out.
 */
function trustedEntry(name: string, entries: ListEntry[], logger: Logger): ListEntry {
  const byRoot = new Map<string | undefined, ListEntry>();
  for (const e of entries) {
    const known = byRoot.get(e.piecesRoot);
    byRoot.set(e.piecesRoot, known ? { ...known, servers: [...new Set([...known.servers, ...e.servers])] } : e);
  }
  const ranked = [...byRoot.values()].sort((a, b) => b.servers.length - a.servers.length || (a.piecesRoot === undefined ? 1 : 0) - (b.piecesRoot === undefined ? 1 : 0));
  const chosen = ranked[0]!;
  for (const other of ranked.slice(1)) logger.warn(`${name}: not using ${other.servers.join(", ")}: they describe its pieces differently from the other servers`);
  return chosen;
}
