/**
 * How much FEC to send: the loss rate the receiver reports (smoothed by `LossEstimator`) decides the
 * block shape (k data, m repairs, block-code.ts). A block is lost to FEC — and costs a Go-Back-N
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

/**
 * The loss rate from the receiver's counts: per interval, datagrams expected (by sequence numbers) and
 * received, optionally the number of runs the losses formed. Counts decay with a half-life measured
 * in datagrams, not in intervals, so short and long intervals weigh what they carry.
 */
export class LossEstimator {
  private expectedSum = 0;
  private lostSum = 0;
  private runsSum = 0;

  constructor(readonly halfLifeDatagrams = 4096) {
    if (!(halfLifeDatagrams > 0)) throw new RangeError(`half-life ${halfLifeDatagrams} must be positive`);
  }

  /** Returns the smoothed loss rate. Counts that cannot be true (negative, not finite) are ignored. */
  onInterval(expected: number, received: number, lossRuns?: number): number {
    if (!(expected > 0 && Number.isFinite(expected) && received >= 0 && Number.isFinite(received))) return this.lossRate;
    const lost = Math.max(0, expected - received); // duplicates can make received exceed expected
    const decay = Math.pow(2, -expected / this.halfLifeDatagrams);
    this.expectedSum = this.expectedSum * decay + expected;
    this.lostSum = this.lostSum * decay + lost;
    const runs = lossRuns !== undefined && lossRuns >= 0 && Number.isFinite(lossRuns) ? Math.min(lost, lossRuns) : lost;
    this.runsSum = this.runsSum * decay + (lost > 0 ? Math.max(1, runs) : 0);
    return this.lossRate;
  }

  /** Fraction of datagrams lost, smoothed; 0 before any report. */
  get lossRate(): number {
    return this.expectedSum > 0 ? this.lostSum / this.expectedSum : 0;
  }

  /** Mean length of a run of losses, smoothed; 1 when unknown or without loss. */
  get burstLength(): number {
    return this.runsSum > 0 ? Math.max(1, this.lostSum / this.runsSum) : 1;
  }
}
