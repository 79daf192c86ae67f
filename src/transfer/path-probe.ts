import { randomU32 } from "../util/random.ts";
import { ipVersion } from "../net/ip.ts";
import { ProtocolError } from "../errors.ts";
import { answerWaitMs } from "./core/rtt-estimator.ts";
import { forbidFragmentation } from "../net/socket-options.ts";
import { udpErrorOf } from "../net/udp-error.ts";
import { decodeProbeAck, encodeProbe, type Greeting, HEADER_BYTES, INTERNET_DATAGRAM_BYTES, MAX_DATAGRAM_BYTES, MIN_PROBE_BYTES, PacketType, readHeader, timestampUs } from "./core/wire.ts";

/**
 * Datagram sizes to try, largest first: the UDP maximum, the sizes loopback and jumbo LANs carry
 * well, and 1400 bytes, which fits a 1500-byte MTU with room for IPv6 and tunnels. The largest that
 * arrives is used whole: with the receive buffer sized (socket-options.ts) nothing smaller paid more.
 * 1 GiB on loopback, alternating runs, 32 KiB segments → 65,481 bytes: no loss 1.49 → 1.47 s (server
 * CPU 0.60 → 0.54 s), 1 % loss 2.22 → 1.39 s, 5 % loss 5.47 → 2.89 s (half the datagrams, half the
 * losses, where loss strikes per datagram as it does on loopback and with nftables).
 */
export const PROBE_SIZES = [MAX_DATAGRAM_BYTES, 32 * 1024 + HEADER_BYTES, 16 * 1024 + HEADER_BYTES, 8 * 1024 + HEADER_BYTES, INTERNET_DATAGRAM_BYTES];
const ROUND_MS = 120;
/** Rounds at most: when many clients start at once their probes can overflow the server's socket. */
const ROUNDS = 4;
/**
 * An advertised address is a claim, not a proof: before anything large goes there, one small PROBE
 * (as small as its answer, 99 bytes) must be answered. It is repeated after 100 ms doubling to 800 ms,
 * and after HELLO_GIVE_UP_MS unanswered the server counts as unreachable: 7 probes, 693 bytes, toward
 * an address that never answers (v2 sent it ~500 KB of path probes and padded REQUESTs).
 */
export const HELLO_BYTES = MIN_PROBE_BYTES;
const HELLO_FIRST_WAIT_MS = 100;
const HELLO_MAX_WAIT_MS = 800;
export const HELLO_GIVE_UP_MS = 3000;

export interface PathProbe {
  /** The largest datagram that arrived whole; undefined when only the small first probe was answered. */
  datagramBytes: number | undefined;
  /** Our own interface refused every size above the internet-safe one: that one was not tried (datagramBytes is undefined). */
  interfaceLimited: boolean;
  /** The round trip of the first answer: the client's first RTT sample of this path. */
  rttMs: number;
  /** The greeting (address token and key share) of the newest answer (its REQUESTs need no RETRY while it is fresh). */
  greeting: Greeting;
  /** When that greeting arrived (performance.now()). */
  greetingAt: number;
}

/** Not even the small first probe was answered: `gone` is the socket's error (ECONNREFUSED: nothing listens there), if it had one. */
export interface PathSilent {
  silent: true;
  gone?: string;
}

/**
 * Path MTU discovery in the spirit of RFC 8899 (DPLPMTUD): send padded probes of each candidate size
 * at once and keep the largest one the path delivered. A round that leaves sizes worth having
 * unanswered is followed by another for just the sizes above the best so far (a lost probe is not a
 * narrow path: 20 clients starting together overflowed the server's socket with probes, and 3 of them
 * settled on 1400-byte datagrams for 50 MiB each). Rounds back off (120 ms doubling, jittered, and once
 * an answer has shown the round-trip time, 4 RTTs but at least 20 ms); after something was answered,
 * two rounds in a row that answer nothing larger end the probing. Probes leave with Don't Fragment
 * (socket-options.ts): a size the kernel refuses to send whole (EMSGSIZE: larger than the interface
 * or a learnt path MTU) is dropped from the candidates. A server that
 * answers no probe leaves the caller's safe default. Before any of that, one small probe must be
 * answered (HELLO_BYTES, repeated until HELLO_GIVE_UP_MS): nothing large goes to an address that has
 * not answered. Returns the largest delivered datagram size, the first answer's round trip and the
 * server's address token, or PathSilent when not even the small probe came back (the server does not
 * answer: the caller gives up on it).
 */
export async function probePath(ip: string, port: number, bindHost?: string, giveUpMs = HELLO_GIVE_UP_MS): Promise<PathProbe | PathSilent> {
  const probeId = randomU32();
  let largest: number | undefined;
  let settle: () => void = () => {};
  let roundSentAt = 0;
  let rttMs: number | undefined; // from the first answer: sizes the wait of the rounds after it
  let hurry: () => void = () => {};
  let gone = false;
  let goneCode: string | undefined;
  let greeting: Greeting | undefined;
  let greetingAt = 0;
  /**
   * When each small probe left, by its id: the server echoes the id, not our timestamp, so each repeat
   * goes under an id of its own (probeId + k), and an answer to an earlier one is timed from when that
   * one left. Timed from the newest, a 200 ms path measured 103 ms: the first answer came 100 ms after
   * the repeat.
   */
  const helloSentAt = new Map<number, number>();
  let answered: () => void = () => {};
  const family = ipVersion(ip) === 6 ? 6 : 4;
  const socket = await Bun.udpSocket({
    hostname: bindHost ?? (family === 6 ? "::" : "0.0.0.0"),
    port: 0,
    binaryType: "uint8array",
    socket: {
      data: (_s, data) => {
        try {
          const h = readHeader(data);
          if (h.type !== PacketType.ProbeAck || (h.sessionId !== probeId && !helloSentAt.has(h.sessionId))) return;
          const { datagramBytes: size, greeting: g } = decodeProbeAck(data);
          greeting = g;
          greetingAt = performance.now();
          if (rttMs === undefined) {
            rttMs = performance.now() - (size === HELLO_BYTES ? (helloSentAt.get(h.sessionId) ?? roundSentAt) : roundSentAt);
            answered();
            hurry(); // the rest of this round's answers are due within a few RTTs, not the full backoff
          }
          if (PROBE_SIZES.includes(size) && (largest === undefined || size > largest)) largest = size;
          // Nothing larger can come (the largest arrived, or the kernel refused every larger size to
          // send whole): done now, not a round's wait later (on a 1500-byte path that was 2–3 RTTs).
          if (worthTrying().length === 0) settle();
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      },
      error: (first, second) => {
        // "Too big for the path" (Don't Fragment) concerns one size, not the server.
        const err = udpErrorOf(first, second);
        if (err.code === "EMSGSIZE") return;
        gone = true; // port closed: nothing will answer
        goneCode ??= err.code ?? err.message;
        settle();
      },
    },
  });
  forbidFragmentation(socket, family);
  const silent = (): PathSilent => (goneCode === undefined ? { silent: true } : { silent: true, gone: goneCode });
  let interfaceLimited = false;
  const result = (): PathProbe | PathSilent => (rttMs === undefined || greeting === undefined ? silent() : { datagramBytes: largest, interfaceLimited, rttMs, greeting, greetingAt });
  let fruitless = 0;
  /** Sizes the kernel refused to send whole: no later round can do better with them. */
  let refusedFrom = Infinity;
  /** Sizes that could still beat the best answer so far. */
  const worthTrying = () => PROBE_SIZES.filter((size) => size < refusedFrom && (largest === undefined || size > largest));
  try {
    // The small first probe, until it is answered or the server counts as unreachable.
    const giveUpAt = performance.now() + giveUpMs;
    for (let waitMs = HELLO_FIRST_WAIT_MS; rttMs === undefined && !gone; waitMs = Math.min(HELLO_MAX_WAIT_MS, 2 * waitMs)) {
      const left = giveUpAt - performance.now();
      if (left <= 0) return silent();
      const helloId = (probeId + helloSentAt.size) >>> 0;
      const sentAt = performance.now();
      helloSentAt.set(helloId, sentAt);
      try {
        socket.send(encodeProbe(helloId, HELLO_BYTES, timestampUs(sentAt)), port, ip);
      } catch (err) {
        // The kernel refused (ICMP already queued): the server is not there.
        goneCode ??= (err as { code?: string }).code ?? (err as Error).message;
        return silent();
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(waitMs, left));
        answered = settle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      answered = settle = () => {};
    }
    if (rttMs === undefined) return silent();
    for (let round = 0; round < ROUNDS && !gone; round++) {
      const before = largest;
      roundSentAt = performance.now();
      const sizes = worthTrying();
      if (sizes.length === 0) break;
      for (let k = 0; k < sizes.length; k++) {
        const size = sizes[k]!;
        // Every larger size was refused by our own kernel (the interface's MTU, e.g. an Ethernet's
        // 1500): whatever becomes of this one, the segments are the internet-safe ones the caller
        // uses when no large probe is answered. So that is the answer now, a round trip sooner.
        if (size === INTERNET_DATAGRAM_BYTES && largest === undefined && k > 0 && refusedFrom <= sizes[k - 1]!) {
          interfaceLimited = true;
          return result();
        }
        try {
          socket.send(encodeProbe(probeId, size, timestampUs(performance.now())), port, ip);
        } catch (err) {
          if ((err as { code?: string }).code === "EMSGSIZE") {
            refusedFrom = Math.min(refusedFrom, size); // larger than the path (or the interface) carries whole
            continue;
          }
          return result(); // the kernel refused (ICMP already queued): the server is not there
        }
      }
      await new Promise<void>((resolve) => {
        // Cleared when settled early: a pending timer would hold a finished fetch's process open.
        const backoff = ROUND_MS * 2 ** round * (0.75 + Math.random() / 2);
        const rttWait = () => answerWaitMs(rttMs!, backoff);
        let timer = setTimeout(resolve, rttMs === undefined ? backoff : rttWait());
        settle = () => {
          clearTimeout(timer);
          resolve();
        };
        hurry = () => {
          clearTimeout(timer);
          timer = setTimeout(resolve, rttWait());
        };
      });
      // Nothing left worth another round: the largest arrived, or every size above the best was refused.
      if (largest !== undefined && worthTrying().length === 0) break;
      // Twice nothing larger: that is the path (once could be a probe lost to a busy server).
      fruitless = before !== undefined && largest === before ? fruitless + 1 : 0;
      if (fruitless >= 2) break;
    }
    return result();
  } finally {
    socket.close();
  }
}
