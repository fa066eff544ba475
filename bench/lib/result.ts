import { cpus, totalmem, platform, arch, release } from 'node:os'
import type { Summary } from './stats.js'

/**
 * What every benchmark under bench/ returns. `bench/run.ts` prints it as a table and writes it,
 * with machine info, to `bench/results/<name>.json`; the JSON holds the same figures as the table.
 */
export interface BenchResult {
  /** One line saying what was measured. */
  readonly title: string
  readonly rows: readonly BenchRow[]
  /** Remarks printed under the table (workload, caveats, what a ratio means). */
  readonly notes?: readonly string[]
  /** Free-form workload parameters, recorded in the JSON. */
  readonly params?: Readonly<Record<string, unknown>>
}

export type Better = 'lower' | 'higher'

export interface Baseline {
  /** What the baseline is, e.g. "LibreMesh rule". */
  readonly name: string
  readonly value: number
}

export interface Target {
  /** The project's goal for this figure, in the row's unit, e.g. 50 (ms). */
  readonly limit: number
  readonly better: Better
  readonly met: boolean
}

export interface BenchRow {
  /** Groups rows in the table, e.g. "merge", "insert rate". */
  readonly section: string
  readonly name: string
  /** Entries (or items) the figure is about, when that applies. */
  readonly n?: number
  readonly unit: string
  /** The median (or the single value of a deterministic figure). */
  readonly value: number
  readonly better: Better
  /** Spread of the repetitions: the 10th and 90th percentiles of the figure. */
  readonly spread?: { readonly p10: number; readonly p90: number }
  /** How many repetitions (or samples) the median is made of; absent for deterministic figures. */
  readonly reps?: number
  readonly baseline?: Baseline
  /** value / baseline.value: above 1 means more than the baseline (slower for ms, faster for a rate). */
  readonly ratio?: number
  readonly target?: Target
}

export interface RowInput {
  readonly section: string
  readonly name: string
  readonly n?: number
  readonly unit: string
  readonly better?: Better
  /** A summary of repetitions, or one deterministic value. */
  readonly value: Summary | number
  readonly baseline?: { readonly name: string; readonly value: Summary | number }
  /** Adds a target check: `value < limit` (better: lower) or `value > limit` (better: higher). */
  readonly target?: number
}

const central = (v: Summary | number): number => (typeof v === 'number' ? v : v.median)

/** Builds a row from a summary or a value, computing the ratio to the baseline and the target check. */
export function row(input: RowInput): BenchRow {
  const better = input.better ?? 'lower'
  const value = central(input.value)
  const out: { -readonly [K in keyof BenchRow]: BenchRow[K] } = { section: input.section, name: input.name, unit: input.unit, value, better }
  if (input.n !== undefined) out.n = input.n
  if (typeof input.value !== 'number') {
    out.spread = { p10: input.value.p10, p90: input.value.p90 }
    out.reps = input.value.reps
  }
  if (input.baseline !== undefined) {
    const b = central(input.baseline.value)
    out.baseline = { name: input.baseline.name, value: b }
    out.ratio = b === 0 ? Number.NaN : value / b
  }
  if (input.target !== undefined) {
    out.target = { limit: input.target, better, met: better === 'lower' ? value < input.target : value > input.target }
  }
  return out
}

export interface MachineInfo {
  readonly node: string
  readonly v8: string
  readonly cpuModel: string
  readonly cpuCount: number
  readonly totalMemoryMB: number
  readonly platform: string
  readonly arch: string
  readonly kernel: string
  readonly date: string
}

export function machineInfo(): MachineInfo {
  const cpu = cpus()
  return {
    node: process.version,
    v8: process.versions.v8,
    cpuModel: cpu[0]?.model.trim() ?? 'unknown',
    cpuCount: cpu.length,
    totalMemoryMB: Math.round(totalmem() / 2 ** 20),
    platform: platform(),
    arch: arch(),
    kernel: release(),
    date: new Date().toISOString(),
  }
}

/** Progress and environment passed to a benchmark's `run`; progress goes to stderr, so stdout holds only the report. */
export interface BenchContext {
  /** Arguments after the benchmark name. */
  readonly args: readonly string[]
  progress(message: string): void
}

/** What a file bench/<name>.ts must export. */
export interface BenchModule {
  run(ctx: BenchContext): Promise<BenchResult>
}
