/** Order statistics for benchmark samples. Medians, not means: a noisy 2-core machine has long tails. */

export interface Summary {
  readonly median: number
  readonly p10: number
  readonly p90: number
  readonly min: number
  readonly max: number
  /** How many samples the summary is made of. */
  readonly reps: number
}

/** The p-th percentile (0..100) of `values`, linearly interpolated between closest ranks. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of no values')
  if (p < 0 || p > 100) throw new Error(`percentile ${p} is outside 0..100`)
  const sorted = [...values].sort((a, b) => a - b)
  const rank = (p / 100) * (sorted.length - 1)
  const lo = Math.floor(rank)
  const hi = Math.ceil(rank)
  const low = sorted[lo] as number
  const high = sorted[hi] as number
  return low + (high - low) * (rank - lo)
}

export function median(values: readonly number[]): number {
  return percentile(values, 50)
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new Error('summary of no values')
  return {
    median: median(values),
    p10: percentile(values, 10),
    p90: percentile(values, 90),
    min: Math.min(...values),
    max: Math.max(...values),
    reps: values.length,
  }
}

/** Applies `f` to every statistic, e.g. to turn a time per run into a rate (note: a decreasing `f` swaps p10 and p90). */
export function mapSummary(s: Summary, f: (v: number) => number): Summary {
  const a = f(s.p10)
  const b = f(s.p90)
  const c = f(s.min)
  const d = f(s.max)
  return { median: f(s.median), p10: Math.min(a, b), p90: Math.max(a, b), min: Math.min(c, d), max: Math.max(c, d), reps: s.reps }
}
