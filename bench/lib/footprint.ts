/**
 * The memory and insert cost of one real daemon holding one large table, filled through its operator API
 * (`POST /malla/v1/tables/<type>/insert`, what `malla insert` uses): issue 13's "runs on a real router".
 */
import { Cleanup } from './cleanup.js'
import { hostRecords } from './data.js'
import { procMemory, sampleRss, sleep, startDaemon } from './daemon.js'
import { postText } from './http.js'
import { median } from './stats.js'

export interface FootprintRun {
  /** VmRSS before any data, bytes. */
  readonly idle: number
  /** VmRSS right after the fill, and once settled. */
  readonly filled: number
  readonly settled: number
  /** VmHWM at the end: the peak over fill, compaction of the whole table and reads. */
  readonly peak: number
  /** Medians of single-key inserts (ms) into the table at `small` entries and at `large`. */
  readonly insertSmallMs: number[]
  readonly insertLargeMs: number[]
  readonly fillMs: number
}

export interface FootprintOptions {
  readonly entries: number
  readonly small: number
  readonly chunk: number
  readonly inserts: number
  readonly env?: NodeJS.ProcessEnv
  /** More `malla peer` flags, such as `--memory lean`. */
  readonly args?: readonly string[]
  readonly progress?: (message: string) => void
}

const TYPE = 'bench-footprint'

/** Single-key inserts through the API, each awaited, one after another: their latencies in ms. */
async function timedInserts(base: string, count: number, tag: string): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < count; i++) {
    const body = JSON.stringify({ [`probe-${tag}-${i}`]: { probe: i, tag, pad: 'x'.repeat(150) } })
    const res = await postText(`${base}/malla/v1/tables/${TYPE}/insert`, body)
    if (res.status !== 200) throw new Error(`insert answered ${res.status}: ${res.text.slice(0, 300)}`)
    out.push(res.ms)
  }
  return out
}

async function fill(base: string, from: number, to: number, chunk: number): Promise<void> {
  for (let i = from; i < to; i += chunk) {
    const n = Math.min(chunk, to - i)
    const records = hostRecords(n, 1000 + i, `host-${i}-`)
    const res = await postText(`${base}/malla/v1/tables/${TYPE}/insert`, JSON.stringify(records), { timeoutMs: 120_000 })
    if (res.status !== 200) throw new Error(`fill insert answered ${res.status}: ${res.text.slice(0, 300)}`)
  }
}

export async function footprintRun(options: FootprintOptions): Promise<FootprintRun> {
  const cleanup = new Cleanup()
  const say = options.progress ?? (() => {})
  try {
    const dir = await cleanup.tempDir('malla-bench-footprint-')
    const daemon = await startDaemon(['--data', dir, '--name', 'bench-footprint', '--bleach-interval', '3600', ...(options.args ?? [])], { env: options.env ?? process.env })
    cleanup.add(`stop daemon ${daemon.pid}`, () => daemon.stop())
    await sleep(1500)
    const idle = median(await sampleRss(daemon.pid, 5, 200))
    say(`footprint: idle ${(idle / 1e6).toFixed(1)} MB; filling ${options.small} entries`)
    await fill(daemon.base, 0, options.small, options.chunk)
    await sleep(1500) // let the compaction of the small table pass
    const insertSmallMs = await timedInserts(daemon.base, options.inserts, 'small')
    const start = process.hrtime.bigint()
    say(`footprint: filling to ${options.entries} entries`)
    await fill(daemon.base, options.small, options.entries, options.chunk)
    const fillMs = Number(process.hrtime.bigint() - start) / 1e6
    const filled = median(await sampleRss(daemon.pid, 3, 200))
    // The quiet table's journal is compacted into its file about 1 s after the last write: the peak includes it.
    await sleep(4000)
    say(`footprint: single inserts at ${options.entries}`)
    const insertLargeMs = await timedInserts(daemon.base, options.inserts, 'large')
    await sleep(4000)
    const listing = (await (await fetch(`${daemon.base}/malla/v1/tables`)).json()) as Array<{ type: string; size: number }>
    const size = listing.find((t) => t.type === TYPE)?.size ?? 0
    if (size < options.entries) throw new Error(`daemon holds ${size} entries, expected at least ${options.entries}`)
    const settled = median(await sampleRss(daemon.pid, 5, 300))
    const peak = (await procMemory(daemon.pid)).hwm
    return { idle, filled, settled, peak, insertSmallMs, insertLargeMs, fillMs }
  } finally {
    await cleanup.run()
  }
}
