import { summarize, type Summary } from './stats.js'

/** A monotonic clock in nanoseconds. */
export const nowNs = (): bigint => process.hrtime.bigint()

/** Milliseconds since `start` (from `nowNs`). */
export const msSince = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6

/** Keeps results alive so the JIT cannot drop the work that produced them. */
let sink: unknown
export function consume(value: unknown): void {
  sink = value
}
export const lastConsumed = (): unknown => sink

export interface RepeatOptions {
  /** Untimed runs first, to let the JIT settle (default 2). */
  readonly warmup?: number
  /** At least this many timed runs (default 5). */
  readonly minReps?: number
  /** At most this many timed runs (default 1000). */
  readonly maxReps?: number
  /** Keep repeating until this much time was measured, within minReps..maxReps (default 0). */
  readonly minTimeMs?: number
}

/** One case of a comparison: `setup` runs untimed before each timed `run`, `teardown` untimed after it. */
export interface Case<S = unknown> {
  readonly name: string
  readonly setup?: () => S | Promise<S>
  readonly run: (state: S) => unknown
  readonly teardown?: (state: S) => unknown
}

/**
 * Times several cases in rounds: every round runs each case once, in a rotating order, so slow drift
 * of a noisy machine (frequency, other tenants, GC pressure) hits every case alike and their ratio stays
 * fair. Returns each case's summary of milliseconds per run, keyed by name.
 */
export async function compareCases(cases: ReadonlyArray<Case<any>>, options: RepeatOptions = {}): Promise<Map<string, Summary>> {
  const warmup = options.warmup ?? 2
  const minReps = Math.max(1, options.minReps ?? 5)
  const maxReps = Math.max(minReps, options.maxReps ?? 1000)
  const minTimeMs = options.minTimeMs ?? 0
  const samples = cases.map(() => [] as number[])
  const once = async (c: Case<any>): Promise<number> => {
    const state = c.setup ? await c.setup() : undefined
    const start = nowNs()
    const out = c.run(state)
    if (out instanceof Promise) consume(await out)
    else consume(out)
    const ms = msSince(start)
    if (c.teardown) await c.teardown(state)
    return ms
  }
  for (let w = 0; w < warmup; w++) for (const c of cases) await once(c)
  let measured = 0
  for (let round = 0; round < maxReps; round++) {
    if (round >= minReps && measured >= minTimeMs) break
    for (let k = 0; k < cases.length; k++) {
      const i = (round + k) % cases.length
      const ms = await once(cases[i] as Case<any>)
      ;(samples[i] as number[]).push(ms)
      measured += ms
    }
  }
  return new Map(cases.map((c, i) => [c.name, summarize(samples[i] as number[])]))
}

/** Times one case (see `compareCases`). */
export async function measure<S>(c: Case<S>, options: RepeatOptions = {}): Promise<Summary> {
  return (await compareCases([c], options)).get(c.name) as Summary
}

/** Runs `fn` once and returns its result and how long it took in milliseconds. */
export async function timed<T>(fn: () => T | Promise<T>): Promise<{ value: T; ms: number }> {
  const start = nowNs()
  const value = await fn()
  return { value, ms: msSince(start) }
}
