/**
 * The honest client and the memory sampler of `bench/hostile.ts`, in a process of their own (forked with the
 * benchmark's own `--import tsx`), so that the floods the benchmark sends from its own event loop do not
 * delay the honest requests or the readings: what they measure is the daemon, plus whatever the shared CPUs
 * cost everyone.
 *
 * Protocol over the IPC channel: the parent sends `ProbeStart`; the probe then sends a normal request at a
 * fixed rate (open loop: one every 1/rate s whatever the answers, so a slow daemon is not given fewer
 * requests) and reads `/proc/<pid>/status` every `sampleMs`, until `ProbeStop`; it answers with one
 * `ProbeResult` once every request it sent has an answer, an error or its timeout. It exits when the parent
 * goes away.
 *
 * A normal request is the push of one small entry, as a leaf or a neighbour sends it (docs/protocol.md §9.2):
 * `POST /cgi-bin/shared-state/<type>` with `x-malla-sync: push` and `{"k<n>":{"data":"v","author":"honest",
 * "bleachTTL":30,"clock":"<increasing decimal>"}}`, timed from the call that sends it to the last byte of the
 * answer, over a keep-alive agent (as a browser or `malla` keeps its connection).
 */
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { fileURLToPath } from 'node:url'

export interface ProbeStart {
  readonly kind: 'start'
  /** e.g. `http://127.0.0.1:41234` (no trailing slash). */
  readonly base: string
  /** Source address of the honest requests (a non-loopback one in the namespace set-up). */
  readonly localAddress?: string
  readonly type: string
  /** Keys are `k<firstKey>`, `k<firstKey + 1>`, ... */
  readonly firstKey: number
  readonly ratePerSecond: number
  /** The daemon's pid, for its VmRSS. */
  readonly pid: number
  readonly sampleMs: number
  /** One request's bound, connect to last byte. */
  readonly timeoutMs: number
  /** At most this many requests in progress: past it a tick is skipped (and counted). */
  readonly maxOutstanding: number
}

export interface ProbeStop {
  readonly kind: 'stop'
}

export interface ProbeResult {
  readonly kind: 'result'
  /** Send → last byte of the answer, of the requests answered 200. */
  readonly latenciesMs: number[]
  /** When each of those was sent, ms since the window began (same order). */
  readonly sentAtMs: number[]
  /** Answers by HTTP status. */
  readonly statuses: Record<string, number>
  /** Requests with no answer, by error (`timeout`, `ECONNRESET`, ...). */
  readonly errors: Record<string, number>
  /** Example answer body per non-200 status (the first 300 characters). */
  readonly examples: Record<string, string>
  readonly sent: number
  /** Ticks skipped because maxOutstanding requests were in progress. */
  readonly skipped: number
  /** [ms since start, VmRSS bytes] every sampleMs. */
  readonly rss: Array<[number, number]>
  /** Readings that failed (the daemon gone, say). */
  readonly rssErrors: number
  /** The next key to use. */
  readonly nextKey: number
  readonly durationMs: number
}

export type ProbeMessage = ProbeStart | ProbeStop

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6

function vmRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status)
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Number(m[1]) * 1024
}

/** Runs one measurement window; `stop()` ends it and resolves with its result. */
function runWindow(start: ProbeStart): { stop(): Promise<ProbeResult> } {
  const url = new URL(start.base)
  const agent = new Agent({ keepAlive: true, maxSockets: start.maxOutstanding })
  const latenciesMs: number[] = []
  const sentAtMs: number[] = []
  const statuses: Record<string, number> = {}
  const errors: Record<string, number> = {}
  const examples: Record<string, string> = {}
  const rss: Array<[number, number]> = []
  let rssErrors = 0
  let sent = 0
  let skipped = 0
  let outstanding = 0
  let key = start.firstKey
  // An increasing decimal clock, from wall time like malla's own (a Lamport clock started from wall time).
  let clock = Date.now()
  let stopping = false
  let onIdle: (() => void) | undefined
  const t0 = nowMs()

  const sample = () => {
    try {
      rss.push([nowMs() - t0, vmRss(start.pid)])
    } catch {
      rssErrors++
    }
  }
  sample()
  const sampler = setInterval(sample, start.sampleMs)

  const send = () => {
    if (outstanding >= start.maxOutstanding) {
      skipped++
      return
    }
    const k = `k${key++}`
    const body = Buffer.from(JSON.stringify({ [k]: { data: 'v', author: 'honest', bleachTTL: 30, clock: String(clock++) } }))
    outstanding++
    sent++
    let settled = false
    const begun = process.hrtime.bigint()
    const at = nowMs() - t0
    const finish = (status: number | undefined, error: string | undefined, text: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      const ms = Number(process.hrtime.bigint() - begun) / 1e6
      if (status !== undefined) {
        statuses[status] = (statuses[status] ?? 0) + 1
        if (status === 200) {
          latenciesMs.push(ms)
          sentAtMs.push(at)
        }
        else examples[status] ??= text.slice(0, 300)
      } else {
        const e = error ?? 'unknown'
        errors[e] = (errors[e] ?? 0) + 1
      }
      outstanding--
      if (stopping && outstanding === 0) onIdle?.()
    }
    const req = request({
      host: url.hostname,
      port: url.port,
      path: `/cgi-bin/shared-state/${start.type}`,
      method: 'POST',
      agent,
      localAddress: start.localAddress,
      headers: { 'content-type': 'application/json', 'content-length': String(body.byteLength), 'x-malla-sync': 'push' },
    })
    const timer = setTimeout(() => {
      finish(undefined, 'timeout', '')
      req.destroy()
    }, start.timeoutMs)
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        if (text.length < 1000) text += chunk
      })
      res.on('end', () => finish(res.statusCode, undefined, text))
      res.on('error', (e: NodeJS.ErrnoException) => finish(undefined, e.code ?? e.message, ''))
    })
    req.on('error', (e: NodeJS.ErrnoException) => finish(undefined, e.code ?? e.message, ''))
    req.end(body)
  }

  // Open loop: tick i is due at t0 + i / rate, whatever happened to the earlier ones.
  const periodMs = 1000 / start.ratePerSecond
  let tick = 0
  let timer: NodeJS.Timeout | undefined
  const schedule = () => {
    if (stopping) return
    send()
    tick++
    timer = setTimeout(schedule, Math.max(0, t0 + tick * periodMs - nowMs()))
  }
  schedule()

  return {
    stop: async () => {
      stopping = true
      clearTimeout(timer)
      // Every request in progress ends by its answer, an error or its own timeout.
      if (outstanding > 0) await new Promise<void>((resolve) => (onIdle = resolve))
      clearInterval(sampler)
      sample()
      agent.destroy()
      return { kind: 'result', latenciesMs, sentAtMs, statuses, errors, examples, sent, skipped, rss, rssErrors, nextKey: key, durationMs: nowMs() - t0 }
    },
  }
}

function main(): void {
  let window: { stop(): Promise<ProbeResult> } | undefined
  process.on('message', (m: ProbeMessage) => {
    if (m.kind === 'start') {
      if (window !== undefined) throw new Error('probe: start while a window runs')
      window = runWindow(m)
    } else if (m.kind === 'stop') {
      const w = window
      window = undefined
      if (w === undefined) throw new Error('probe: stop with no window running')
      void w.stop().then((r) => process.send?.(r))
    }
  })
  // The benchmark is gone (ended, crashed, killed): so is its probe.
  process.on('disconnect', () => process.exit(0))
  process.send?.({ kind: 'ready' })
}

if (process.send !== undefined && process.argv[1] === fileURLToPath(import.meta.url)) main()
