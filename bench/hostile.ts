/**
 * `npm run bench -- hostile`: a real daemon (`malla peer`, the built CLI, default flags) under hostile floods,
 * against the same daemon idle, measured in the same run. For every condition, a fresh daemon and data
 * directory, and these figures:
 * - its resident memory (VmRSS of /proc/<pid>/status): the highest reading, every 100 ms, during the flood,
 *   and the reading 5 s after the flood ended (and VmHWM, the kernel's own peak, as a cross-check);
 * - the p50 and p95 latency of an honest client's normal requests during the flood: pushes of one small entry
 *   (`POST /cgi-bin/shared-state/<type>`, `x-malla-sync: push`), 20 per second, sent by a process of their
 *   own (bench/lib/hostile-probe.ts) so the flood this process sends does not delay them.
 *
 * Conditions:
 * - idle (loopback): the daemon on 127.0.0.1 and the honest requests alone: the baseline of (a) and (b);
 * - a. big writes from this machine: 800 inserts of ~1 MiB (the same 16 keys, 60 KiB of string data each),
 *   4 at a time, through `/malla/v1/tables/<type>/insert` from loopback;
 * - b. feed clients: 200 `GET /malla/v1/events` clients that never read (raw sockets, paused once the answer's
 *   head is in) and 500 that read, while a.'s writes go on for 20 s;
 * - idle (netns): the daemon alone in a network namespace, the honest requests from a non-local address of a
 *   veth's far end: the baseline of (c) and (d);
 * - c. one client floods ~1 MiB full-table POSTs to `/cgi-bin/shared-state/<type>`, 8 at a time, as fast as
 *   answered, for 20 s, from one non-local address, while the honest client pushes from another;
 * - d. a burst of 2000 hostile requests from a third non-local address, 8 at a time: entries nested 6000
 *   levels deep, `data: 1e309`, and `/malla/v1/tables/<type>/sync` with 2000 URLs that all point at a listener
 *   of this benchmark that counts the connections it gets (expected: none; the verb is local only).
 *
 * Everything the benchmark makes (daemons, the probe process, the namespace and its veth, the listener,
 * sockets, temporary directories) is removed at the end however the run ends, also at SIGINT, SIGTERM or
 * SIGHUP, and by a synchronous last resort at process exit; every loop and wait is bounded in time.
 * `--quick` runs shorter floods to try the benchmark; `--only a,c` runs those conditions (and the idle baseline
 * each needs); `--dump FILE` writes every window's raw samples (each honest push's send time and latency, every
 * RSS reading) as JSON.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { constants, cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Cleanup } from './lib/cleanup.js'
import { procMemory, sleep, startDaemon, type BenchDaemon } from './lib/daemon.js'
import { nowMs } from './lib/feed.js'
import { formatNumber } from './lib/format.js'
import { logProblems } from './lib/log-problems.js'
import { closeAllSync, openHostileNet, type HostileNet } from './lib/hostile-net.js'
import type { ProbeMessage, ProbeResult, ProbeStart } from './lib/hostile-probe.js'
import { netnsUnavailable } from './lib/netns.js'
import { row, type BenchContext, type BenchResult, type BenchRow } from './lib/result.js'
import { percentile, summarize } from './lib/stats.js'

const TYPE = 'flood'
const MiB = 2 ** 20
const KiB = 1024
/** The daemon's default --max-body. */
const MAX_BODY = 1024 * 1024
/** Largest `data` the insert API takes (src/core/json-limits.ts MAX_DATA_CHARS), less room for the JSON quotes. */
const INSERT_DATA_CHARS = 60 * 1024 - 64
/** Largest entry a merge takes is 64 KiB of JSON: this much data leaves room for author, TTL and clock. */
const ATTACK_DATA_CHARS = 65_300
const FLOOD_KEYS = 16

const HONEST_RATE = 20
const HONEST_TIMEOUT_MS = 10_000
/** Like a browser's connections per host (6), below the daemon's 8 requests in progress per address: a tick finding 6 in progress is skipped (and counted). */
const HONEST_MAX_OUTSTANDING = 6
const SAMPLE_MS = 100
/** RSS "after" is read this long after the flood's last request ended. */
const AFTER_MS = 5_000
/** A daemon over this much memory ends its condition at once (the machine's sake). */
const RSS_ABORT_BYTES = 6 * 2 ** 30
const REQUEST_TIMEOUT_MS = 30_000

interface Plan {
  readonly idleMs: number
  readonly aWrites: number
  readonly aLimitMs: number
  readonly bReaders: number
  readonly bStalled: number
  readonly bWriteMs: number
  readonly cFloodMs: number
  readonly dRequests: number
  readonly dLimitMs: number
}

const FULL: Plan = { idleMs: 10_000, aWrites: 800, aLimitMs: 90_000, bReaders: 500, bStalled: 200, bWriteMs: 20_000, cFloodMs: 20_000, dRequests: 2000, dLimitMs: 60_000 }
const QUICK: Plan = { idleMs: 4_000, aWrites: 100, aLimitMs: 20_000, bReaders: 100, bStalled: 40, bWriteMs: 5_000, cFloodMs: 6_000, dRequests: 300, dLimitMs: 20_000 }

const A_CONCURRENCY = 4
const B_CONCURRENCY = 4
const C_CONCURRENCY = 8
const D_CONCURRENCY = 8
const D_DEPTH = 6000
const D_URLS = 2000
const FEED_OPEN_BATCH = 50

// ---------------------------------------------------------------- run state, and undoing it however the run ends

let aborted: string | undefined
/** What the synchronous exit path must undo: the probe process and temporary directories (daemons: bench/lib/daemon.ts; namespaces: hostile-net.ts). */
const liveChildren = new Set<ChildProcess>()
const liveDirs = new Set<string>()

function onExit(): void {
  for (const c of liveChildren) c.kill('SIGKILL')
  closeAllSync()
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true })
}

const checkAborted = (): void => {
  if (aborted !== undefined) throw new Error(`interrupted by ${aborted}`)
}

async function tempDir(cleanup: Cleanup, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  liveDirs.add(dir)
  cleanup.add(`remove ${dir}`, async () => {
    await rm(dir, { recursive: true, force: true })
    liveDirs.delete(dir)
  })
  return dir
}

// ---------------------------------------------------------------- the probe process (honest client + RSS sampler)

class Probe {
  private waiting: { resolve: (r: ProbeResult) => void; reject: (e: Error) => void } | undefined
  private exited: string | undefined

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: { kind: string }) => {
      if (m.kind === 'result' && this.waiting) {
        this.waiting.resolve(m as ProbeResult)
        this.waiting = undefined
      }
    })
    child.on('exit', (code, signal) => {
      liveChildren.delete(child)
      this.exited = `the probe process exited (${code ?? signal})`
      this.waiting?.reject(new Error(this.exited))
      this.waiting = undefined
    })
  }

  static async start(cleanup: Cleanup): Promise<Probe> {
    const path = fileURLToPath(new URL('./lib/hostile-probe.ts', import.meta.url))
    // The benchmark's own node flags (`--import tsx`), so the probe runs from its TypeScript source too.
    const child = fork(path, [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    liveChildren.add(child)
    const probe = new Probe(child)
    cleanup.add('stop the probe process', () => probe.kill())
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the probe process was not ready within 20 s')), 20_000)
      child.once('message', () => {
        clearTimeout(timer)
        resolve()
      })
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`the probe process exited (${code ?? signal}) before it was ready`))
      })
    })
    return probe
  }

  begin(start: Omit<ProbeStart, 'kind'>): void {
    if (this.exited) throw new Error(this.exited)
    this.child.send({ kind: 'start', ...start } satisfies ProbeMessage)
  }

  /** Ends the window; the probe answers once its last request has settled (each is bounded by HONEST_TIMEOUT_MS). */
  end(): Promise<ProbeResult> {
    if (this.exited) return Promise.reject(new Error(this.exited))
    return new Promise<ProbeResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined
        reject(new Error(`the probe gave no result within ${(HONEST_TIMEOUT_MS + 10_000) / 1000} s`))
      }, HONEST_TIMEOUT_MS + 10_000)
      this.waiting = {
        resolve: (r) => {
          clearTimeout(timer)
          resolve(r)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      this.child.send({ kind: 'stop' } satisfies ProbeMessage)
    })
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const gone = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000)
    await gone
    clearTimeout(timer)
  }
}

// ---------------------------------------------------------------- HTTP from this process

interface Answer {
  /** Undefined when the request got no answer (see `error`). */
  readonly status: number | undefined
  readonly error: string | undefined
  readonly ms: number
  /** Bytes of the answer's body. */
  readonly bytes: number
  /** Its first characters. */
  readonly text: string
}

/** One POST, bounded by `timeoutMs`; never rejects. The answer is read to its end and counted, not kept. */
function post(o: { url: URL; path: string; body: Buffer; headers?: Record<string, string>; agent: Agent; localAddress?: string; timeoutMs?: number }): Promise<Answer> {
  return new Promise((resolve) => {
    const begun = nowMs()
    let done = false
    const finish = (status: number | undefined, error: string | undefined, bytes: number, text: string) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve({ status, error, ms: nowMs() - begun, bytes, text })
    }
    const req = request({
      host: o.url.hostname,
      port: o.url.port,
      path: o.path,
      method: 'POST',
      agent: o.agent,
      localAddress: o.localAddress,
      headers: { 'content-type': 'application/json', 'content-length': String(o.body.byteLength), ...o.headers },
    })
    const timer = setTimeout(() => {
      finish(undefined, 'timeout', 0, '')
      req.destroy()
    }, o.timeoutMs ?? REQUEST_TIMEOUT_MS)
    req.on('response', (res) => {
      let bytes = 0
      let text = ''
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.byteLength
        if (text.length < 400) text += chunk.toString('utf8', 0, Math.min(chunk.byteLength, 400))
      })
      res.on('end', () => finish(res.statusCode, undefined, bytes, text))
      res.on('error', (e: NodeJS.ErrnoException) => finish(undefined, e.code ?? e.message, bytes, text))
      res.on('close', () => finish(undefined, 'answer cut short', bytes, text))
    })
    // An early answer (429, 403) may come while the body is still being sent; the daemon then closes the
    // connection, and the rest of the write may fail here: the answer, if it came, is what counts.
    req.on('error', (e: NodeJS.ErrnoException) => finish(undefined, e.code ?? e.message, 0, ''))
    req.end(o.body)
  })
}

/** GET of a JSON document, from `localAddress`, bounded. */
function getJson(url: string, localAddress: string | undefined, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(url, { localAddress, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${url} answered ${res.statusCode}: ${text.slice(0, 200)}`))
        try {
          resolve(JSON.parse(text))
        } catch (e) {
          reject(e as Error)
        }
      })
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/** Runs `one(i)` for i = 0, 1, ... with `concurrency` at a time, until `count` started, `deadline` (nowMs) passed, `stop()` or an abort. Returns how many started. */
async function pool(concurrency: number, count: number, deadline: number, stop: () => boolean, one: (i: number) => Promise<void>): Promise<number> {
  let next = 0
  const worker = async () => {
    while (next < count && nowMs() < deadline && !stop() && aborted === undefined) await one(next++)
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return next
}

/** Counts answers by status (or error), with one example body per kind. */
class Tally {
  readonly counts = new Map<string, number>()
  readonly examples = new Map<string, string>()
  add(a: Answer): string {
    const k = a.status !== undefined ? String(a.status) : `no answer (${a.error})`
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1)
    if (!this.examples.has(k) && a.text) this.examples.set(k, a.text.trim().slice(0, 240))
    return k
  }
  get(k: string): number {
    return this.counts.get(k) ?? 0
  }
  get total(): number {
    let n = 0
    for (const v of this.counts.values()) n += v
    return n
  }
  /** e.g. `200: 12, 429: 300`. */
  describe(): string {
    return [...this.counts].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'
  }
  fivexx(): number {
    return [...this.counts].filter(([k]) => /^5\d\d$/.test(k)).reduce((n, [, v]) => n + v, 0)
  }
}

/** The kind of refusal a 429 body names: requests in progress, byte budget, all senders' bytes, feed clients. */
function busyKind(text: string): string {
  if (/requests in progress/.test(text)) return 'requests in progress'
  if (/budget/.test(text)) return 'byte budget'
  if (/bytes of requests in progress/.test(text)) return 'all senders\' bytes'
  if (/feed clients/.test(text)) return 'feed clients'
  return 'other'
}

// ---------------------------------------------------------------- bodies

const fixed = (n: number, width: number): string => String(n).padStart(width, '0')

/** An insert body: the same FLOOD_KEYS keys, each a string of INSERT_DATA_CHARS characters that differs from write to write. */
function insertBody(seq: number): Buffer {
  const pad = 'x'.repeat(INSERT_DATA_CHARS - 12)
  const parts: string[] = []
  for (let j = 0; j < FLOOD_KEYS; j++) parts.push(`"f${j}":"${fixed(seq, 8)}:${fixed(j, 2)}:${pad}"`)
  return Buffer.from(`{${parts.join(',')}}`)
}

/** A full table of FLOOD_KEYS entries by `attacker`, each just under the 64 KiB entry limit, the body just under 1 MiB. */
function attackBody(seq: number, clock: number): Buffer {
  const pad = 'y'.repeat(ATTACK_DATA_CHARS - 12)
  const parts: string[] = []
  for (let j = 0; j < FLOOD_KEYS; j++) {
    parts.push(`"a${j}":{"data":"${fixed(seq, 8)}:${fixed(j, 2)}:${pad}","author":"attacker","bleachTTL":30,"clock":"${clock + j}"}`)
  }
  return Buffer.from(`{${parts.join(',')}}`)
}

// ---------------------------------------------------------------- one condition

interface Window {
  readonly honest: ProbeResult
  /** Highest VmRSS sampled during the flood, bytes. */
  readonly rssPeak: number
  readonly rssStart: number
  readonly rssAfter: number
  readonly hwm: number
  readonly floodMs: number
  /** CPU the daemon used during the flood, in cores (CPU seconds per second). */
  readonly daemonCpu: number
  /** CPU this process (the flood's clients) used meanwhile, in cores. */
  readonly benchCpu: number
  /** The whole machine meanwhile (/proc/stat): cores busy (every process and the kernel), and cores waiting on the disk. */
  readonly machineBusy: number
  readonly machineIowait: number
  /** Bytes the veth carried into the namespace during the flood (netns conditions only). */
  readonly linkInBytes: number | undefined
  /** Warnings and errors the daemon logged during the window, by message. */
  readonly logged: Map<string, { count: number; example: string }>
  readonly problems: string[]
}

interface Target {
  readonly daemon: BenchDaemon
  readonly url: URL
  /** Where the honest requests come from (undefined: the kernel's choice, loopback). */
  readonly honestFrom: string | undefined
  /** The host's end of the namespace's veth, when the daemon is in the namespace. */
  readonly hostDev: string | undefined
}

/** Bytes a network device has sent (the host's end of the veth: what went into the namespace). */
async function txBytes(dev: string | undefined): Promise<number | undefined> {
  if (dev === undefined) return undefined
  try {
    return Number((await readFile(`/sys/class/net/${dev}/statistics/tx_bytes`, 'utf8')).trim())
  } catch {
    return undefined
  }
}

let nextHonestKey = 0

/**
 * One measurement: the honest client and the sampler run while `flood()` does; then RSS 5 s after it ended.
 * `flood` gets `tooBig()`: true once the daemon is over RSS_ABORT_BYTES (it must then stop).
 */
async function measure(ctx: BenchContext, probe: Probe, t: Target, label: string, flood: (tooBig: () => boolean) => Promise<void>): Promise<Window> {
  checkAborted()
  const problems: string[] = []
  const logMark = t.daemon.log.length
  const rssStart = (await procMemory(t.daemon.pid)).rss
  let big = false
  const guard = setInterval(() => {
    procMemory(t.daemon.pid).then(
      (m) => {
        if (m.rss > RSS_ABORT_BYTES && !big) {
          big = true
          problems.push(`${label}: the daemon's RSS passed ${formatNumber(RSS_ABORT_BYTES / MiB)} MiB: flood stopped there`)
        }
      },
      () => {},
    )
  }, 250)
  probe.begin({
    base: `${t.url.protocol}//${t.url.host}`,
    localAddress: t.honestFrom,
    type: TYPE,
    firstKey: nextHonestKey,
    ratePerSecond: HONEST_RATE,
    pid: t.daemon.pid,
    sampleMs: SAMPLE_MS,
    timeoutMs: HONEST_TIMEOUT_MS,
    maxOutstanding: HONEST_MAX_OUTSTANDING,
  })
  const t0 = nowMs()
  const cpu0 = await cpuSeconds(t.daemon.pid)
  const bench0 = process.cpuUsage()
  const machine0 = await machineCpu()
  const link0 = await txBytes(t.hostDev)
  let floodError: unknown
  try {
    await flood(() => big)
  } catch (e) {
    floodError = e
  }
  const floodMs = nowMs() - t0
  const daemonCpu = ((await cpuSeconds(t.daemon.pid)) - cpu0) / (floodMs / 1000)
  const benchUsage = process.cpuUsage(bench0)
  const benchCpu = (benchUsage.user + benchUsage.system) / 1e6 / (floodMs / 1000)
  const machine1 = await machineCpu()
  const link1 = await txBytes(t.hostDev)
  const linkInBytes = link0 === undefined || link1 === undefined ? undefined : link1 - link0
  const machineBusy = (machine1.busy - machine0.busy) / (floodMs / 1000)
  const machineIowait = (machine1.iowait - machine0.iowait) / (floodMs / 1000)
  clearInterval(guard)
  const honest = await probe.end()
  nextHonestKey = honest.nextKey
  if (floodError !== undefined) throw floodError
  checkAborted()
  if (t.daemon.child.exitCode !== null || t.daemon.child.signalCode !== null) {
    throw new Error(`${label}: the daemon exited (${t.daemon.child.exitCode ?? t.daemon.child.signalCode}) during the flood; its last lines:\n${t.daemon.log.slice(-10).join('\n')}`)
  }
  ctx.progress(`${label}: flood over after ${formatNumber(floodMs / 1000)} s; honest: ${honest.sent} sent, ${describeHonest(honest)}; RSS peak ${formatNumber(peakOf(honest) / MiB)} MiB; waiting ${AFTER_MS / 1000} s`)
  await sleep(AFTER_MS)
  const after = await procMemory(t.daemon.pid)
  const rssPeak = peakOf(honest)
  if (honest.rss.length === 0) problems.push(`${label}: no RSS reading during the flood (${honest.rssErrors} failed)`)
  return { honest, rssPeak, rssStart, rssAfter: after.rss, hwm: after.hwm, floodMs, daemonCpu, benchCpu, machineBusy, machineIowait, linkInBytes, logged: logProblems(t.daemon.log.slice(logMark)), problems }
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat (100 ticks per second); NaN once it is gone. */
async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** Seconds of CPU time the whole machine spent busy (user, nice, system, irq, softirq, steal) and waiting on the disk, from /proc/stat. */
async function machineCpu(): Promise<{ busy: number; iowait: number }> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? ''
    const [user = 0, nice = 0, system = 0, , iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number)
    return { busy: (user + nice + system + irq + softirq + steal) / 100, iowait: iowait / 100 }
  } catch {
    return { busy: Number.NaN, iowait: Number.NaN }
  }
}

const peakOf = (r: ProbeResult): number => r.rss.reduce((m, [, v]) => Math.max(m, v), 0)

function describeHonest(r: ProbeResult): string {
  const statuses = Object.entries(r.statuses).map(([k, v]) => `${k}: ${v}`)
  const errors = Object.entries(r.errors).map(([k, v]) => `${k}: ${v}`)
  const lat = r.latenciesMs.length > 0 ? `, p50 ${formatNumber(percentile(r.latenciesMs, 50))} ms, p95 ${formatNumber(percentile(r.latenciesMs, 95))} ms` : ''
  return `${[...statuses, ...errors].join(', ') || 'no answers'}${r.skipped ? `, ${r.skipped} ticks skipped (${HONEST_MAX_OUTSTANDING} in progress)` : ''}${lat}`
}

/** Starts a fresh daemon (loopback, or in the namespace), runs `fn`, stops it. */
async function withDaemon<T>(cleanup: Cleanup, label: string, net: HostileNet | undefined, fn: (t: Target) => Promise<T>): Promise<T> {
  checkAborted()
  const dir = await tempDir(cleanup, `malla-bench-hostile-${label.replace(/[^a-z0-9]+/gi, '-')}-`)
  const args = ['--data', join(dir, 'data'), '--name', 'hostile-bench']
  const daemon = net
    ? await startDaemon([...args, '--port', '8080'], { netns: net.ns, host: '0.0.0.0', base: `http://${net.inside}:8080` })
    : await startDaemon(args)
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await daemon.stop(3000)
  }
  cleanup.add(`stop the ${label} daemon`, stop)
  try {
    return await fn({ daemon, url: new URL(daemon.base), honestFrom: net?.host[HONEST], hostDev: net?.hostDev })
  } finally {
    await stop()
  }
}

// Addresses on the host's end of the namespace's veth, by role.
const ATTACKER = 0
const HONEST = 1
const LISTENER = 2
const BURST = 3

// ---------------------------------------------------------------- the conditions

interface Idle {
  readonly w: Window
}

interface FloodA {
  readonly w: Window
  readonly writes: Tally
  readonly bodyBytes: number
  readonly started: number
}

interface FloodB {
  readonly w: Window
  readonly writes: Tally
  readonly feeds: { readers: Tally; stalled: Tally; readersDropped: number; readerBytes: number; droppedLogged: number; droppedWhy: Map<string, number> }
}

interface FloodC {
  readonly w: Window
  readonly attack: Tally
  readonly busy: Map<string, number>
  readonly acceptedBytes: number
  readonly sentBytes: number
  readonly bodyBytes: number
}

interface BurstD {
  readonly w: Window
  readonly byKind: Map<string, Tally>
  readonly listenerConnections: number
  readonly listenerConnectionsAll: number
  readonly exchanges: number | undefined
  readonly refusalMs: number[]
  readonly bodies: Record<string, number>
}

async function idle(ctx: BenchContext, probe: Probe, t: Target, label: string, plan: Plan): Promise<Idle> {
  const w = await measure(ctx, probe, t, label, () => sleep(plan.idleMs))
  return { w }
}

async function floodA(ctx: BenchContext, probe: Probe, t: Target, plan: Plan): Promise<FloodA> {
  const writes = new Tally()
  const agent = new Agent({ keepAlive: true, maxSockets: A_CONCURRENCY })
  const bodyBytes = insertBody(0).byteLength
  let started = 0
  try {
    const w = await measure(ctx, probe, t, 'a', async (tooBig) => {
      const deadline = nowMs() + plan.aLimitMs
      let last = nowMs()
      started = await pool(A_CONCURRENCY, plan.aWrites, deadline, tooBig, async (i) => {
        const a = await post({ url: t.url, path: `/malla/v1/tables/${TYPE}/insert`, body: insertBody(i), agent })
        writes.add(a)
        if (nowMs() - last > 5000) {
          last = nowMs()
          ctx.progress(`a: ${writes.total} writes answered (${writes.describe()})`)
        }
      })
    })
    return { w, writes, bodyBytes, started }
  } finally {
    agent.destroy()
  }
}

interface FeedSocket {
  readonly socket: Socket
  readonly kind: 'reader' | 'stalled'
  status: number | undefined
  bytes: number
  closedByDaemon: boolean
  closing: boolean
}

/** Opens `GET /malla/v1/events` on a raw socket; resolves once the answer's status line is in (or after `timeoutMs`). */
function openFeed(url: URL, kind: 'reader' | 'stalled', timeoutMs = 10_000): Promise<FeedSocket> {
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port: Number(url.port) })
    const f: FeedSocket = { socket, kind, status: undefined, bytes: 0, closedByDaemon: false, closing: false }
    let head = ''
    let settled = false
    const settle = () => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(f)
    }
    const timer = setTimeout(settle, timeoutMs)
    socket.on('connect', () => socket.write(`GET /malla/v1/events HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`))
    socket.on('data', (chunk: Buffer) => {
      f.bytes += chunk.byteLength
      if (f.status !== undefined) return
      head += chunk.toString('latin1', 0, Math.min(chunk.byteLength, 200))
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head)
      if (!m) return
      f.status = Number(m[1])
      if (f.status !== 200) {
        f.closing = true
        socket.destroy()
      } else if (kind === 'stalled') {
        // From here on it reads nothing: what the daemon writes stays in the kernel's buffers, then in the daemon's.
        socket.pause()
      }
      settle()
    })
    const gone = () => {
      if (!f.closing) f.closedByDaemon = true
      settle()
    }
    socket.on('end', gone)
    socket.on('close', gone)
    socket.on('error', () => {})
  })
}

async function floodB(ctx: BenchContext, probe: Probe, t: Target, plan: Plan): Promise<FloodB> {
  const writes = new Tally()
  const agent = new Agent({ keepAlive: true, maxSockets: B_CONCURRENCY })
  const sockets: FeedSocket[] = []
  const readers = new Tally()
  const stalled = new Tally()
  const tallyFeed = (f: FeedSocket) => (f.kind === 'reader' ? readers : stalled).add({ status: f.status, error: f.status === undefined ? (f.closedByDaemon ? 'closed' : 'timeout') : undefined, ms: 0, bytes: 0, text: '' })
  try {
    // The clients that never read first, so that they all get in (the daemon takes 512 feed clients in all).
    // They are part of the condition, not of the window: the window is the writes with every client connected.
    const kinds: Array<'reader' | 'stalled'> = [...Array.from({ length: plan.bStalled }, () => 'stalled' as const), ...Array.from({ length: plan.bReaders }, () => 'reader' as const)]
    for (let i = 0; i < kinds.length; i += FEED_OPEN_BATCH) {
      checkAborted()
      const batch = await Promise.all(kinds.slice(i, i + FEED_OPEN_BATCH).map((k) => openFeed(t.url, k)))
      sockets.push(...batch)
    }
    for (const f of sockets) tallyFeed(f)
    ctx.progress(`b: feed clients: never reading ${stalled.describe()}; reading ${readers.describe()}`)
    const w = await measure(ctx, probe, t, 'b', async (tooBig) => {
      const deadline = nowMs() + plan.bWriteMs
      let last = nowMs()
      await pool(B_CONCURRENCY, Number.MAX_SAFE_INTEGER, deadline, tooBig, async (i) => {
        writes.add(await post({ url: t.url, path: `/malla/v1/tables/${TYPE}/insert`, body: insertBody(i), agent }))
        if (nowMs() - last > 5000) {
          last = nowMs()
          const open = sockets.filter((f) => f.status === 200 && !f.closedByDaemon)
          ctx.progress(`b: ${writes.total} writes answered (${writes.describe()}); feed clients still open (as seen here): ${open.filter((f) => f.kind === 'reader').length} reading, ${open.filter((f) => f.kind === 'stalled').length} never reading`)
        }
      })
      // The flood ends with its clients: every feed socket is closed before the "after" reading.
      for (const f of sockets) {
        f.closing = f.closing || !f.closedByDaemon
        f.socket.destroy()
      }
    })
    const accepted = sockets.filter((f) => f.status === 200)
    const dropped = logProblemsMatching(t.daemon.log, /feed client dropped/)
    return {
      w,
      writes,
      feeds: {
        readers,
        stalled,
        readersDropped: accepted.filter((f) => f.kind === 'reader' && f.closedByDaemon).length,
        readerBytes: accepted.filter((f) => f.kind === 'reader').reduce((n, f) => n + f.bytes, 0),
        droppedLogged: dropped.count,
        droppedWhy: dropped.why,
      },
    }
  } finally {
    for (const f of sockets) f.socket.destroy()
    agent.destroy()
  }
}

/** "feed client dropped" lines and their `why=` (the daemon logs each one; they are not throttled). */
function logProblemsMatching(log: readonly string[], pattern: RegExp): { count: number; why: Map<string, number> } {
  const why = new Map<string, number>()
  let count = 0
  for (const line of log) {
    if (!pattern.test(line)) continue
    count++
    const w = (/ why=("(?:[^"\\]|\\.)*"|\S+)/.exec(line)?.[1] ?? '?').replace(/^"|"$/g, '').replace(/\d+/g, 'N')
    why.set(w, (why.get(w) ?? 0) + 1)
  }
  return { count, why }
}

async function floodC(ctx: BenchContext, probe: Probe, t: Target, net: HostileNet, plan: Plan): Promise<FloodC> {
  const attack = new Tally()
  const busy = new Map<string, number>()
  const agent = new Agent({ keepAlive: true, maxSockets: C_CONCURRENCY })
  const from = net.host[ATTACKER] as string
  const clock0 = Date.now() * 1000
  let acceptedBytes = 0
  let sentBytes = 0
  const bodyBytes = attackBody(0, clock0).byteLength
  try {
    const w = await measure(ctx, probe, t, 'c', async (tooBig) => {
      const deadline = nowMs() + plan.cFloodMs
      let last = nowMs()
      // A new body (new data, later clocks) once the last one was taken; refused ones are sent again as they
      // were, which keeps this process's own CPU for building bodies small.
      let seq = 0
      let current = attackBody(seq, clock0)
      await pool(C_CONCURRENCY, Number.MAX_SAFE_INTEGER, deadline, tooBig, async () => {
        const body = current
        // No push header: a full-table sync, whose answer is our whole table (the most work per request).
        const a = await post({ url: t.url, path: `/cgi-bin/shared-state/${TYPE}`, body, agent, localAddress: from })
        sentBytes += body.byteLength
        const k = attack.add(a)
        if (a.status === 200) {
          acceptedBytes += body.byteLength
          if (current === body) current = attackBody(++seq, clock0 + seq * FLOOD_KEYS)
        }
        if (a.status === 429) {
          const kind = busyKind(a.text)
          busy.set(kind, (busy.get(kind) ?? 0) + 1)
        }
        if (a.status === undefined && k.includes('no answer')) await sleep(5) // a refused connection: do not spin
        if (nowMs() - last > 5000) {
          last = nowMs()
          ctx.progress(`c: attacker answers so far: ${attack.describe()}`)
        }
      })
    })
    return { w, attack, busy, acceptedBytes, sentBytes, bodyBytes }
  } finally {
    agent.destroy()
  }
}

interface Listener {
  readonly server: Server
  readonly port: number
  connections: number
}

async function startListener(cleanup: Cleanup, address: string): Promise<Listener> {
  const server = createServer()
  const l: Listener = { server, port: 0, connections: 0 }
  server.on('connection', (s: Socket) => {
    l.connections++
    s.destroy()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, address, () => resolve())
  })
  cleanup.add(`close the listener on ${address}`, () => new Promise((resolve) => server.close(resolve)))
  return Object.assign(l, { port: (server.address() as { port: number }).port })
}

async function burstD(ctx: BenchContext, probe: Probe, t: Target, net: HostileNet, listener: Listener, plan: Plan): Promise<BurstD> {
  const from = net.host[BURST] as string
  const agent = new Agent({ keepAlive: true, maxSockets: D_CONCURRENCY })
  const nesting = '['.repeat(D_DEPTH) + ']'.repeat(D_DEPTH)
  const urls = Array.from({ length: D_URLS }, (_, j) => `http://${net.host[LISTENER]}:${listener.port}/cgi-bin/shared-state/${TYPE}?u=${j}`)
  const syncBody = Buffer.from(JSON.stringify(urls))
  const kinds = ['deep nesting', 'data 1e309', 'sync, 2000 URLs'] as const
  const make = (i: number): { path: string; body: Buffer } => {
    const kind = kinds[i % kinds.length]
    if (kind === 'deep nesting') return { path: `/cgi-bin/shared-state/${TYPE}`, body: Buffer.from(`{"d${i}":{"data":${nesting},"author":"hostile","bleachTTL":30,"clock":"1"}}`) }
    if (kind === 'data 1e309') return { path: `/cgi-bin/shared-state/${TYPE}`, body: Buffer.from(`{"i${i}":{"data":1e309,"author":"hostile","bleachTTL":30,"clock":"1"}}`) }
    return { path: `/malla/v1/tables/${TYPE}/sync`, body: syncBody }
  }
  const bodies = Object.fromEntries(kinds.map((k, i) => [k, make(i).body.byteLength]))
  const byKind = new Map<string, Tally>(kinds.map((k) => [k, new Tally()]))
  const refusalMs: number[] = []
  const before = listener.connections
  try {
    const w = await measure(ctx, probe, t, 'd', async (tooBig) => {
      const deadline = nowMs() + plan.dLimitMs
      await pool(D_CONCURRENCY, plan.dRequests, deadline, tooBig, async (i) => {
        const { path, body } = make(i)
        const a = await post({ url: t.url, path, body, agent, localAddress: from })
        ;(byKind.get(kinds[i % kinds.length] as string) as Tally).add(a)
        if (a.status !== undefined && a.status !== 200) refusalMs.push(a.ms)
      })
      ctx.progress(`d: ${[...byKind].map(([k, v]) => `${k}: ${v.describe()}`).join('; ')}`)
    })
    // The daemon's own count of the sync exchanges it started (none expected), asked from the honest address.
    let exchanges: number | undefined
    try {
      const info = (await getJson(`${t.url.protocol}//${t.url.host}/malla/v1/info`, t.honestFrom)) as { traffic?: { exchanges?: number } }
      exchanges = info.traffic?.exchanges
    } catch (e) {
      w.problems.push(`d: /malla/v1/info unavailable: ${(e as Error).message}`)
    }
    return { w, byKind, listenerConnections: listener.connections - before, listenerConnectionsAll: listener.connections, exchanges, refusalMs, bodies }
  } finally {
    agent.destroy()
  }
}

// ---------------------------------------------------------------- rows

const mib = (bytes: number): number => bytes / MiB

function windowRows(section: string, w: Window, base: Window | undefined, baseName: string): BenchRow[] {
  const rows: BenchRow[] = []
  const b = (v: number | undefined) => (base === undefined || v === undefined ? undefined : { name: baseName, value: v })
  rows.push(row({ section, name: 'daemon RSS, peak during the flood (every 100 ms)', unit: 'MiB', value: mib(w.rssPeak), baseline: b(base && mib(base.rssPeak)) }))
  rows.push(row({ section, name: `daemon RSS, ${AFTER_MS / 1000} s after the flood`, unit: 'MiB', value: mib(w.rssAfter), baseline: b(base && mib(base.rssAfter)) }))
  rows.push(row({ section, name: 'daemon VmHWM (kernel\'s peak) at the end', unit: 'MiB', value: mib(w.hwm), baseline: b(base && mib(base.hwm)) }))
  const lat = w.honest.latenciesMs
  const baseLat = base?.honest.latenciesMs
  if (lat.length > 0) {
    rows.push(row({ section, name: 'honest push latency, p50 (p10..p90 beside)', unit: 'ms', value: summarize(lat), baseline: baseLat && baseLat.length > 0 ? { name: baseName, value: summarize(baseLat) } : undefined }))
    rows.push(row({ section, name: 'honest push latency, p95', unit: 'ms', value: percentile(lat, 95), baseline: baseLat && baseLat.length > 0 ? { name: baseName, value: percentile(baseLat, 95) } : undefined }))
  }
  rows.push(row({ section, name: 'daemon CPU during the flood', unit: 'cores', value: w.daemonCpu, baseline: b(base?.daemonCpu) }))
  rows.push(row({ section, name: 'this process\'s CPU meanwhile (the flood\'s clients)', unit: 'cores', value: w.benchCpu }))
  rows.push(row({ section, name: `whole machine busy meanwhile (of ${cpus().length} cores)`, unit: 'cores', value: w.machineBusy, baseline: b(base?.machineBusy) }))
  if (w.linkInBytes !== undefined) {
    rows.push(row({ section, name: 'bytes into the namespace over its veth (every client)', unit: 'MiB/s', value: mib(w.linkInBytes) / (w.floodMs / 1000), baseline: b(base?.linkInBytes === undefined ? undefined : mib(base.linkInBytes) / (base.floodMs / 1000)) }))
  }
  rows.push(row({ section, name: 'whole machine waiting on the disk (iowait)', unit: 'cores', value: w.machineIowait, baseline: b(base?.machineIowait) }))
  const answered200 = w.honest.statuses['200'] ?? 0
  rows.push(row({ section, name: 'honest pushes answered 200', n: w.honest.sent, unit: 'requests', better: 'higher', value: answered200 }))
  rows.push(row({ section, name: 'honest pushes not answered 200 (429, 5xx, errors, timeouts)', n: w.honest.sent, unit: 'requests', value: w.honest.sent - answered200, target: 1 }))
  rows.push(row({ section, name: `honest ticks skipped (${HONEST_MAX_OUTSTANDING} pushes in progress)`, unit: 'ticks', value: w.honest.skipped }))
  return rows
}

const statusRows = (section: string, what: string, t: Tally, n?: number): BenchRow[] =>
  [...t.counts].sort(([a], [b]) => a.localeCompare(b)).map(([status, count]) => row({ section, name: `${what}: ${status}`, n, unit: 'requests', value: count }))

// ---------------------------------------------------------------- run

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const quick = ctx.args.includes('--quick')
  const plan = quick ? QUICK : FULL
  const argValue = (name: string): string | undefined => {
    const i = ctx.args.indexOf(name)
    return i >= 0 ? ctx.args[i + 1] : undefined
  }
  // `--only a,c`: those conditions (and the idle baseline each needs); `--dump FILE`: every window's raw samples.
  const only = new Set((argValue('--only') ?? 'a,b,c,d').split(',').map((x) => x.trim()))
  const dumpFile = argValue('--dump')
  const cleanup = new Cleanup()
  const notes: string[] = []
  const problems: string[] = []
  const netnsNotRun = await netnsUnavailable()
  // One cleanup, whoever asks first (the end of the run, or a signal): both wait for the same steps.
  let cleaning: Promise<void> | undefined
  const cleanupAll = (): Promise<void> => (cleaning ??= cleanup.run())

  // Ctrl-C, SIGTERM, SIGHUP: undo everything (bounded), then exit as the signal would; process exit undoes the rest.
  const onSignal = (signal: NodeJS.Signals) => {
    if (aborted !== undefined) {
      process.stderr.write(`bench: ${signal} again: exiting now\n`)
      process.exit(128 + (constants.signals[signal] ?? 0))
    }
    aborted = signal
    process.stderr.write(`bench: ${signal}: stopping the daemons and the probe, deleting the namespace\n`)
    void Promise.race([cleanupAll(), sleep(15_000)]).finally(() => process.exit(128 + (constants.signals[signal] ?? 0)))
  }
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
  for (const s of signals) process.on(s, onSignal)
  process.on('exit', onExit)

  let idleLo: Idle | undefined
  let a: FloodA | undefined
  let b: FloodB | undefined
  let idleNs: Idle | undefined
  let c: FloodC | undefined
  let d: BurstD | undefined
  let net: HostileNet | undefined
  const failed: string[] = []
  const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn()
    } catch (e) {
      checkAborted()
      const message = (e as Error).message
      ctx.progress(`${what} failed: ${message}`)
      failed.push(`${what}: FAILED: ${message}`)
      return undefined
    }
  }

  // What else keeps the machine busy: this benchmark's latencies are only as clean as the machine is quiet.
  const quiet0 = await machineCpu()
  await sleep(2000)
  const quiet1 = await machineCpu()
  const busyBefore = (quiet1.busy - quiet0.busy) / 2
  ctx.progress(`before the run, the machine was busy ${formatNumber(busyBefore)} of ${cpus().length} cores${busyBefore > 0.3 ? ': other work is running, the latencies will show it' : ''}`)
  try {
    const probe = await Probe.start(cleanup)
    ctx.progress('probe process ready')

    if (only.has('a') || only.has('b')) idleLo = await attempt('idle (loopback)', () => withDaemon(cleanup, 'idle-loopback', undefined, (t) => idle(ctx, probe, t, 'idle (loopback)', plan)))
    if (only.has('a')) a = await attempt('a', () => withDaemon(cleanup, 'a', undefined, (t) => floodA(ctx, probe, t, plan)))
    if (only.has('b')) b = await attempt('b', () => withDaemon(cleanup, 'b', undefined, (t) => floodB(ctx, probe, t, plan)))

    if (!only.has('c') && !only.has('d')) {
      // not asked for
    } else if (netnsNotRun !== undefined) ctx.progress(`c, d: not run: ${netnsNotRun}`)
    else {
      net = await openHostileNet(4, checkAborted)
      const n = net
      cleanup.add(`delete namespace ${n.ns}`, () => n.close())
      ctx.progress(`namespace ${n.ns}: daemon at ${n.inside}, this host at ${n.host.join(', ')} (attacker, honest, listener, burst) on ${n.hostDev}`)
      const listener = await startListener(cleanup, n.host[LISTENER] as string)
      idleNs = await attempt('idle (netns)', () => withDaemon(cleanup, 'idle-netns', n, (t) => idle(ctx, probe, t, 'idle (netns)', plan)))
      if (only.has('c')) c = await attempt('c', () => withDaemon(cleanup, 'c', n, (t) => floodC(ctx, probe, t, n, plan)))
      if (only.has('d')) d = await attempt('d', () => withDaemon(cleanup, 'd', n, (t) => burstD(ctx, probe, t, n, listener, plan)))
      if (listener.connections > 0) problems.push(`the listener the sync URLs point at got ${listener.connections} connection(s) in all: the daemon contacted it`)
      await n.close().catch((e: Error) => problems.push(`namespace: ${e.message}`))
    }
  } finally {
    await cleanupAll()
    for (const s of signals) process.off(s, onSignal)
    process.off('exit', onExit)
  }

  if (dumpFile !== undefined) {
    const dump = Object.fromEntries(
      ([['idle (loopback)', idleLo], ['a', a], ['b', b], ['idle (netns)', idleNs], ['c', c], ['d', d]] as const).flatMap(([k, x]) =>
        x ? [[k, { floodMs: x.w.floodMs, sentAtMs: x.w.honest.sentAtMs.map(round1), latenciesMs: x.w.honest.latenciesMs.map(round1), rss: x.w.honest.rss.map(([at, v]) => [Math.round(at), round1(mib(v))]) }]] : [],
      ),
    )
    await writeFile(dumpFile, JSON.stringify(dump) + '\n')
  }

  // ---------------------------------------------------------------- the report
  const rows: BenchRow[] = []
  const loName = 'idle daemon (loopback)'
  const nsName = 'idle daemon (netns)'
  if (idleLo) rows.push(...windowRows('idle (loopback)', idleLo.w, undefined, loName))
  if (a) {
    const s = `a. ${plan.aWrites} × 1 MiB inserts, loopback`
    rows.push(...windowRows(s, a.w, idleLo?.w, loName))
    rows.push(...statusRows(s, 'inserts answered', a.writes, a.started))
    rows.push(row({ section: s, name: 'inserts per second', unit: '/s', better: 'higher', value: a.writes.total / (a.w.floodMs / 1000) }))
  }
  if (b) {
    const s = `b. ${plan.bReaders} + ${plan.bStalled} feed clients + writes, loopback`
    rows.push(...windowRows(s, b.w, idleLo?.w, loName))
    rows.push(...statusRows(s, 'feed clients never reading', b.feeds.stalled, plan.bStalled))
    rows.push(...statusRows(s, 'feed clients reading', b.feeds.readers, plan.bReaders))
    rows.push(row({ section: s, name: 'reading feed clients dropped by the daemon', n: b.feeds.readers.get('200'), unit: 'clients', value: b.feeds.readersDropped }))
    rows.push(row({ section: s, name: 'feed clients dropped by the daemon, in all (its log)', unit: 'clients', value: b.feeds.droppedLogged }))
    rows.push(row({ section: s, name: 'feed bytes received by all reading clients', unit: 'MiB', better: 'higher', value: mib(b.feeds.readerBytes) }))
    rows.push(...statusRows(s, 'inserts answered', b.writes))
  }
  if (idleNs) rows.push(...windowRows('idle (netns)', idleNs.w, undefined, nsName))
  if (c) {
    const s = 'c. 1 MiB flood vs honest, netns'
    rows.push(...windowRows(s, c.w, idleNs?.w, nsName))
    rows.push(...statusRows(s, 'attacker requests answered', c.attack))
    for (const [kind, count] of c.busy) rows.push(row({ section: s, name: `attacker 429s for ${kind}`, unit: 'requests', value: count }))
    rows.push(row({ section: s, name: 'attacker bytes accepted (bodies answered 200) per second', unit: 'KiB/s', value: c.acceptedBytes / KiB / (c.w.floodMs / 1000) }))
    rows.push(row({ section: s, name: 'attacker: bodies of the requests it started, per second', unit: 'MiB/s', better: 'higher', value: mib(c.sentBytes) / (c.w.floodMs / 1000) }))
  }
  if (d) {
    const s = `d. ${plan.dRequests} hostile requests, netns`
    rows.push(...windowRows(s, d.w, idleNs?.w, nsName))
    for (const [kind, t] of d.byKind) rows.push(...statusRows(s, kind, t, t.total))
    if (d.refusalMs.length > 0) rows.push(row({ section: s, name: 'time to refuse one (p50, p10..p90 beside)', unit: 'ms', value: summarize(d.refusalMs) }))
    rows.push(row({ section: s, name: 'connections to the sync URLs\' listener', unit: 'connections', value: d.listenerConnections, target: 1 }))
    if (d.exchanges !== undefined) rows.push(row({ section: s, name: 'sync exchanges the daemon started (/malla/v1/info)', unit: 'exchanges', value: d.exchanges, target: 1 }))
  }

  // 5xx answers anywhere are daemon bugs.
  const fivexx: Array<[string, number]> = [
    ['a. inserts', a?.writes.fivexx() ?? 0],
    ['b. inserts', b?.writes.fivexx() ?? 0],
    ['c. attacker', c?.attack.fivexx() ?? 0],
    ...[...(d?.byKind ?? [])].map(([k, t]) => [`d. ${k}`, t.fivexx()] as [string, number]),
    ...([['idle (loopback)', idleLo], ['a', a], ['b', b], ['idle (netns)', idleNs], ['c', c], ['d', d]] as const).map(
      ([k, x]) => [`${k}: honest`, Object.entries(x?.w.honest.statuses ?? {}).filter(([st]) => /^5/.test(st)).reduce((n, [, v]) => n + v, 0)] as [string, number],
    ),
  ]
  for (const [what, n] of fivexx) if (n > 0) problems.push(`${what}: ${n} answer(s) with a 5xx status`)

  notes.push(
    `Every condition runs a fresh daemon (\`malla peer\`, the built CLI, with its default flags: --max-body 1 MiB, source limits 256 KiB/s after a 4 MiB burst and 8 requests in progress per non-local address, 512 feed clients in all) with a fresh data directory, given only --host, --port, --data, --name and --stun-port 0. Loopback: --host 127.0.0.1 --port 0. Netns: \`ip netns exec <ns> node …/main.js peer --host 0.0.0.0 --port 8080\` in a namespace of its own.`,
    `Honest client: a separate process (bench/lib/hostile-probe.ts), ${HONEST_RATE} pushes per second on a fixed schedule (open loop), each POST /cgi-bin/shared-state/${TYPE} with x-malla-sync: push and one new key {"k<n>":{"data":"v","author":"honest","bleachTTL":30,"clock":"<increasing>"}}, over a keep-alive agent; latency = send → last byte of the answer, of the pushes answered 200 (the others are counted apart); each bounded at ${HONEST_TIMEOUT_MS / 1000} s; at most ${HONEST_MAX_OUTSTANDING} in progress (a browser's connections per host; the daemon takes 8 per address), a tick that finds ${HONEST_MAX_OUTSTANDING} in progress is skipped and counted. It pushes into the same table the floods write. The same process reads the daemon's VmRSS every ${SAMPLE_MS} ms during the flood: "peak" is the highest reading; "after" is read ${AFTER_MS / 1000} s after the flood's last request ended (and, in b., after its feed sockets were closed). Idle = the same honest client for ${plan.idleMs / 1000} s with nothing else: (a) and (b) are compared with the idle loopback daemon, (c) and (d) with the idle netns daemon (honest pushes from a non-local address).`,
    `This machine has ${cpus().length} CPU cores, shared by the daemon, this process (the flood, the feed sockets) and the probe: under a flood, part of the honest latency is the CPU the flooders themselves take. In the 2 s before the run, with nothing of the benchmark running, the machine was busy ${formatNumber(busyBefore)} cores${busyBefore > 0.3 ? ' (OTHER WORK WAS RUNNING: every latency here includes it)' : ''}; "whole machine busy" rows count every process and the kernel.`,
  )
  if (a) {
    notes.push(
      `a. ${a.started} of ${plan.aWrites} inserts sent (bounded at ${plan.aLimitMs / 1000} s), ${A_CONCURRENCY} at a time, POST /malla/v1/tables/${TYPE}/insert from 127.0.0.1 (not limited: this machine), each ${formatNumber(a.bodyBytes / KiB)} KiB: the same ${FLOOD_KEYS} keys f0..f15, each a ${formatNumber(INSERT_DATA_CHARS / KiB)} KiB string that differs every time; took ${formatNumber(a.w.floodMs / 1000)} s; answers: ${a.writes.describe()}.`,
    )
  }
  if (b) {
    const why = [...b.feeds.droppedWhy].map(([k, v]) => `${v}× "${k}"`).join(', ')
    notes.push(
      `b. ${plan.bStalled} feed clients that never read (raw TCP sockets: request sent, answer's head read, then socket.pause(); default kernel buffers, Node cannot shrink SO_RCVBUF) opened first, then ${plan.bReaders} that read everything, all GET /malla/v1/events from 127.0.0.1; then ${B_CONCURRENCY} writers sent a.'s inserts (${FLOOD_KEYS} × ${formatNumber(INSERT_DATA_CHARS / KiB)} KiB entries, ~1 MiB per change, every change going to every feed client) for ${plan.bWriteMs / 1000} s: ${b.writes.total} answered (${b.writes.describe()}). Feed clients never reading: ${b.feeds.stalled.describe()}; reading: ${b.feeds.readers.describe()}. The daemon logged ${b.feeds.droppedLogged} "feed client dropped"${why ? ` (${why})` : ''}; ${b.feeds.readersDropped} of them were reading clients (their sockets closed by the daemon), which had received ${formatNumber(mib(b.feeds.readerBytes))} MiB between them.`,
    )
    if (b.feeds.readersDropped > 0) {
      notes.push(
        `b. Why reading clients are dropped (src/node/daemon/change-stream.ts): a client counts as stalled as soon as one write leaves ≥ 64 KiB in its socket's buffer, and a client that stalls while the stalled clients' bytes are over 32 MiB is dropped at once. A ~1 MiB change leaves ~1 MiB in every client's buffer right after it is written (before any client could read it), so the first ~32 clients written fill the 32 MiB and every client written after them is dropped, reading or not; clients that never read keep their place until their 60 s stall timeout. The frame is one Buffer shared by every socket, so those 32 MiB are counted, not held.`,
      )
    }
  }
  if (net) notes.push(`Netns: namespace ${net.ns} (named as \`malla lab --netns\` names its own, so \`malla lab --clean\` would remove it after a SIGKILL), veth ${net.hostDev}/${net.nsDev}, ${net.prefix}.0/24 (checked to overlap no route or address of this host): the daemon at ${net.inside}; on the host's end ${net.host[ATTACKER]} (attacker), ${net.host[HONEST]} (honest), ${net.host[LISTENER]} (the listener the sync URLs point at), ${net.host[BURST]} (the burst of d.). Each client binds its source address (http.request localAddress), so the daemon sees four different non-local hosts.`)
  if (c) {
    const budgetKiBs = (4 * 1024 + (256 * c.w.floodMs) / 1000) / (c.w.floodMs / 1000)
    notes.push(
      `c. From ${net?.host[ATTACKER]}, ${C_CONCURRENCY} at a time, as fast as answered, for ${formatNumber(c.w.floodMs / 1000)} s: POST /cgi-bin/shared-state/${TYPE} (a full-table sync, no push header, so each accepted one is answered with the whole table), each ${formatNumber(c.bodyBytes / KiB)} KiB: ${FLOOD_KEYS} entries of ~64 KiB by "attacker" with increasing clocks. Answers: ${c.attack.describe()}${c.busy.size ? ` (429s: ${[...c.busy].map(([k, v]) => `${v} for ${k}`).join(', ')})` : ''}. Accepted = bodies of requests answered 200; the byte budget alone would allow at most ${formatNumber(budgetKiBs)} KiB/s over this window (4 MiB burst + 256 KiB/s); each accepted request costs its body and also its answer, the whole table (the daemon debits answers that carry tables), so about half of that goes to bodies.`,
    )
    notes.push(
      `c. Refused requests still cost bytes on the wire: the attacker started requests with ${formatNumber(c.sentBytes / MiB / (c.w.floodMs / 1000))} MiB/s of bodies, and the veth carried ${c.w.linkInBytes === undefined ? '(not measured)' : `${formatNumber(mib(c.w.linkInBytes) / (c.w.floodMs / 1000))} MiB/s`} into the namespace (the daemon answers 429 once the budget is out and closes the connection, which cuts most bodies short); a router's own links carry far less than a veth. The kernels and the daemon handle those bytes and connections on the same ${cpus().length} cores as the honest client. A body's declared length is charged whole before it is read, so a refused request spends nothing; after the burst the ${C_CONCURRENCY} concurrent requests wait on the 256 KiB/s refill: ${c.attack.get('200')} accepted in all.`,
    )
    for (const [k, ex] of c.attack.examples) if (k !== '200') notes.push(`c. attacker ${k} example: ${ex}`)
  }
  if (d) {
    notes.push(
      `d. From ${net?.host[BURST]}, ${D_CONCURRENCY} at a time, ${plan.dRequests} requests in rotation: "deep nesting" = POST /cgi-bin/shared-state/${TYPE} with one entry whose data is ${D_DEPTH} nested arrays (${formatNumber((d.bodies['deep nesting'] ?? 0) / KiB)} KiB); "data 1e309" = the same with data 1e309 (${d.bodies['data 1e309']} B); "sync, 2000 URLs" = POST /malla/v1/tables/${TYPE}/sync with ${D_URLS} URLs (${formatNumber((d.bodies['sync, 2000 URLs'] ?? 0) / KiB)} KiB), every one of them http://${net?.host[LISTENER]}:<port>/…, where this benchmark counts connections: it got ${d.listenerConnections} during d. (${d.listenerConnectionsAll} during the whole netns part). The byte budget of that address (4 MiB, then 256 KiB/s) is what turns the later requests into 429s; every refusal is charged only the bytes read.`,
    )
    for (const [kind, t] of d.byKind) for (const [k, ex] of t.examples) notes.push(`d. ${kind}, ${k} example: ${ex}`)
  }
  notes.push(
    'For comparison, the figures reported before the hostile-input work (commit eb83398), not measured by this run: 800 writes of 1 MB to one key took the daemon from 63 to 895 MiB; feed clients + writes: 891 MiB; a flood from one address raised another client\'s p50 from 2 ms to 110 ms and the daemon to 787 MiB.',
  )
  if (netnsNotRun !== undefined) notes.push(`c. and d. NOT RUN: ${netnsNotRun}. They need root on Linux (a network namespace and a veth pair).`)
  for (const [label, x] of [['idle (loopback)', idleLo], ['a', a], ['b', b], ['idle (netns)', idleNs], ['c', c], ['d', d]] as const) {
    if (!x) continue
    const w = x.w
    problems.push(...w.problems)
    const honestRest = { ...w.honest.statuses, ...w.honest.errors }
    delete honestRest['200']
    if (Object.keys(honestRest).length > 0) {
      problems.push(`${label}: honest pushes not answered 200: ${Object.entries(honestRest).map(([k, v]) => `${k}: ${v}`).join(', ')}${Object.entries(w.honest.examples).map(([k, v]) => ` (${k}: ${v.trim()})`).join('')}`)
    }
    if (w.logged.size > 0) notes.push(`${label}: the daemon logged ${[...w.logged].map(([what, { count, example }]) => `"${what}" ${count}× (e.g. ${example})`).join('; ')}`)
  }
  notes.push(...failed, ...problems)

  const raw = (w: Window | undefined) =>
    w && {
      rssStartMiB: round1(mib(w.rssStart)),
      rssPeakMiB: round1(mib(w.rssPeak)),
      rssAfterMiB: round1(mib(w.rssAfter)),
      hwmMiB: round1(mib(w.hwm)),
      floodMs: Math.round(w.floodMs),
      honest: { sent: w.honest.sent, statuses: w.honest.statuses, errors: w.honest.errors, skipped: w.honest.skipped, p50: w.honest.latenciesMs.length ? round1(percentile(w.honest.latenciesMs, 50)) : null, p95: w.honest.latenciesMs.length ? round1(percentile(w.honest.latenciesMs, 95)) : null, p99: w.honest.latenciesMs.length ? round1(percentile(w.honest.latenciesMs, 99)) : null, max: w.honest.latenciesMs.length ? round1(Math.max(...w.honest.latenciesMs)) : null },
      rssSamples: w.honest.rss.length,
    }
  return {
    title: 'the daemon under hostile floods (memory, and an honest client\'s latency), vs the same daemon idle',
    rows,
    notes,
    params: {
      quick,
      plan,
      machineBusyBeforeCores: Math.round(busyBefore * 100) / 100,
      honest: { ratePerSecond: HONEST_RATE, timeoutMs: HONEST_TIMEOUT_MS, sampleMs: SAMPLE_MS, afterMs: AFTER_MS },
      concurrency: { a: A_CONCURRENCY, b: B_CONCURRENCY, c: C_CONCURRENCY, d: D_CONCURRENCY },
      bodies: { insertDataChars: INSERT_DATA_CHARS, attackDataChars: ATTACK_DATA_CHARS, keys: FLOOD_KEYS, depth: D_DEPTH, urls: D_URLS, maxBody: MAX_BODY },
      netns: net ? { ns: net.ns, prefix: net.prefix } : { run: false, notRun: netnsNotRun },
      windows: { idleLoopback: raw(idleLo?.w), a: raw(a?.w), b: raw(b?.w), idleNetns: raw(idleNs?.w), c: raw(c?.w), d: raw(d?.w) },
    },
  }
}

const round1 = (v: number): number => Math.round(v * 10) / 10
