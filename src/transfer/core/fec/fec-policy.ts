/**
 * How much FEC to send: the raw loss rate (the sender measures it from the receiver's datagram counts,
 * src/transfer/core/gbn-sender.ts) decides the block shape (k data, m repairs, block-code.ts). A block is lost to FEC — and costs a Go-Back-N
 * go-back — when more than m of its k + m datagrams are lost; the policy picks the least overhead m / k
 * that keeps that rare, and no repair at all where the path loses (almost) nothing. Pure arithmetic.
 */

export interface FecPolicyOptions {
  /** Largest acceptable chance that a span of `kMax` data segments needs a go-back. */
  maxFailure?: number;
  kMin?: number;
  /** Largest block: bounds the receiver's decoding work (≈ k segment operations per lost segment). */
  kMax?: number;
  mMax?: number;
  /** Mean number of datagrams in a run of losses (1: independent losses). */
  burstLength?: number;
}

export interface FecChoice {
  k: number;
  /** Repair segments per block; 0 means send no FEC. */
  m: number;
  /** Repair datagrams per data datagram: m / k. */
  overhead: number;
  /** Chance that one block cannot be rebuilt. */
  blockFailure: number;
  /** False when no shape meets `maxFailure` (the loss is too high): this is the most robust one. */
  meetsTarget: boolean;
}

export const DEFAULT_MAX_FAILURE = 0.01;
export const DEFAULT_K_MIN = 8;
/** 64 data segments: at 1 % loss a block needs 3 repairs (4.7 %), and a rebuild reads ≈ 64 segments. */
export const DEFAULT_K_MAX = 64;
export const DEFAULT_M_MAX = 16;

/**
 * P(a block of k data and m repair datagrams loses more than m of them). Independent losses: the
 * binomial tail. With bursts of mean length b, losses come as runs starting at rate p / b, each
 * erasing b datagrams, so the block fails when more than ⌊m / b⌋ runs start in it (b = 1 is the
 * binomial case).
 */
export function blockFailureProbability(k: number, m: number, lossRate: number, burstLength = 1): number {
  const p = Math.min(1, Math.max(0, lossRate));
  if (p === 0) return 0;
  const b = Math.max(1, burstLength);
  const n = k + m;
  const runRate = Math.min(1, p / b);
  const tolerated = Math.floor(m / b);
  if (runRate === 1) return tolerated >= n ? 0 : 1;
  // 1 − P(runs ≤ tolerated), summing the binomial terms upward (n ≤ a few hundred: exact enough)
  let term = Math.pow(1 - runRate, n);
  let cdf = 0;
  for (let x = 0; x <= tolerated && x <= n; x++) {
    cdf += term;
    term *= ((n - x) / (x + 1)) * (runRate / (1 - runRate));
  }
  return Math.max(0, 1 - cdf);
}

/** At most this many repairs per block (what the receiver's decoder is built for; the code allows 32). */
export const MAX_REPAIRS_PER_BLOCK = 8;

/**
 * How many repairs a block of `k` segments gets at raw loss rate `p` (src/transfer/core/gbn-sender.ts asks
 * at each block's first segment), with `inFlight` segments out: the m that minimises what is sent on
 * top of the data, m / k for the repairs plus, when the block still cannot be rebuilt (more than m of
 * its k + m datagrams lost), a Go-Back-N resend of everything in flight. None on a clean path.
 * `burstLength`: losses come in runs of about that many (the sender infers it from blocks failing).
 */
export function repairsFor(k: number, p: number, inFlight: number, burstLength = 1): number {
  if (!(p > 0) || k <= 0) return 0;
  let best = 0;
  let bestCost = Infinity;
  for (let m = 0; m <= MAX_REPAIRS_PER_BLOCK; m++) {
    const cost = m / k + blockFailureProbability(k, m, p, burstLength) * (Math.max(k, inFlight) / k);
    if (cost < bestCost - 1e-9) {
      best = m;
      bestCost = cost;
    }
  }
  return best;
}

/** Failure over a span of `span` data segments made of blocks of k: what makes different k comparable. */
function spanFailure(blockFailure: number, k: number, span: number): number {
  return 1 - Math.pow(1 - blockFailure, span / k);
}

/** The fewest repairs for a fixed block of k that keep its failure chance ≤ maxFailure (at most mMax). */
export function repairCount(lossRate: number, k: number, options: FecPolicyOptions = {}): number {
  const maxFailure = options.maxFailure ?? DEFAULT_MAX_FAILURE;
  const mMax = options.mMax ?? DEFAULT_M_MAX;
  for (let m = 0; m < mMax; m++) if (blockFailureProbability(k, m, lossRate, options.burstLength) <= maxFailure) return m;
  return mMax;
}

/**
 * The block shape with the least overhead m / k whose chance of a go-back per `kMax` data segments
 * is ≤ maxFailure; m = 0 when even uncoded segments meet that (a clean path, or a loss now and then).
 * Among equal overheads the smaller block wins (less to decode, sooner repaired).
 */
export function chooseFec(lossRate: number, options: FecPolicyOptions = {}): FecChoice {
  const maxFailure = options.maxFailure ?? DEFAULT_MAX_FAILURE;
  const kMin = options.kMin ?? DEFAULT_K_MIN;
  const kMax = options.kMax ?? DEFAULT_K_MAX;
  const mMax = options.mMax ?? DEFAULT_M_MAX;
  const burst = options.burstLength ?? 1;
  const uncoded = blockFailureProbability(kMax, 0, lossRate, burst);
  if (uncoded <= maxFailure) return { k: kMax, m: 0, overhead: 0, blockFailure: uncoded, meetsTarget: true };
  let best: FecChoice | undefined;
  let safest: (FecChoice & { span: number }) | undefined;
  for (let m = 1; m <= mMax; m++) {
    for (let k = kMin; k <= kMax; k++) {
      const failure = blockFailureProbability(k, m, lossRate, burst);
      const span = spanFailure(failure, k, kMax);
      const overhead = m / k;
      if (span <= maxFailure) {
        if (!best || overhead < best.overhead - 1e-12) best = { k, m, overhead, blockFailure: failure, meetsTarget: true };
      } else if (!safest || span < safest.span) {
        safest = { k, m, overhead, blockFailure: failure, meetsTarget: false, span };
      }
    }
  }
  if (best) return best;
  const { span: _span, ...fallback } = safest!;
  return fallback;
}
