/**
 * `npm run bench -- propagation` (issue 4): how fast one change crosses a mesh of real daemons, and what it
 * costs on the links, against the same daemons in LibreMesh mode (`--mode libremesh --sync-interval 1`: a
 * full-table POST to every neighbour every second, nothing in between) measured in the same run.
 *
 * 1. Chains of H = 1, 5, 10, 20 hops (H + 1 daemons on 127.0.0.1, each given both neighbours with --peer),
 *    a 10,000-entry table (~200 B of data per entry) already in sync everywhere; then single-key inserts at
 *    one end, timed until the far end's change feed (subscribed beforehand) delivers that key; bytes are the
 *    growth of every daemon's `/malla/v1/info` traffic counters over the same window, divided by H.
 *    Then, when run as root on Linux, the same chains (both modes, same table, samples and bytes) with each
 *    daemon in its own network namespace, linked by veth pairs along the chain (`malla lab --netns`'s code,
 *    bench/lib/netns.ts), the daemons finding each other by `--discover` (ff02::1) as LibreMesh does; this
 *    process reaches their APIs through one veth per namespace to the host. Not root: those rows are not run,
 *    and the notes say why.
 * 2. 100 routers in a seeded random connected topology (`malla lab --topology random`'s generator): every
 *    router inserts one key at once, timed until every router's feed has delivered all 100 keys.
 *
 * Every wait is bounded; every daemon is stopped and every temporary directory removed at the end, however
 * the run ends (and every namespace and veth, also at a crash or a signal: bench/lib/netns.ts). `--quick`
 * runs a smaller version (H = 1, 5; 3 samples; 20 routers) to try the benchmark; `--routers-only` runs part 2 alone.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { links } from '../src/node/lab/topology.js'
import { Cleanup } from './lib/cleanup.js'
import { hostRecord, hostRecords, prng } from './lib/data.js'
import { procMemory, sleep, startDaemon, type BenchDaemon } from './lib/daemon.js'
import { ChangeFeed, nowMs } from './lib/feed.js'
import { formatNumber } from './lib/format.js'
import { NETNS_PORT, netnsUnavailable, openNetnsChain, type NetnsChain } from './lib/netns.js'
import { freePorts } from './lib/ports.js'
import { row, type BenchContext, type BenchResult, type BenchRow } from './lib/result.js'
import { median, summarize, type Summary } from './lib/stats.js'
import { logProblems } from './lib/log-problems.js'
import { relayFloor } from './lib/relay-floor.js'

type Mode = 'malla' | 'libremesh'

const TABLE = 'prop'
const CONV_TABLE = 'conv'
const ENTRIES = 10_000
const MAX_BODY = 16_000_000
/** Entries per insert request of the fill. */
const FILL_BATCH = 2000
/** LibreMesh mode's period P, seconds. */
const LM_PERIOD_S = 1
const LATENCY_TARGET_MS = 100
const LATENCY_TARGET_HOPS = 10
const BYTES_PER_LINK_TARGET = 2048
/** A change pushed into one end of a 10-hop loopback chain reaches the far end within this (issue 10). */
const FLOOR_TARGET_HOPS = 10
const FLOOR_TARGET_MS = 25
/** Netns chains: how long the daemons may take to find their neighbours (their first probe takes 0.2 to 3 s). */
const DISCOVERY_TIMEOUT_MS = 15_000
/** After the far end has the whole table: journal compaction (1 s after the last change) and syncs settle. */
const SETTLE_AFTER_FILL_MS = 2000
/** After the far end saw a probe: lets the last replies (counted when an exchange completes) come in. */
const SETTLE_AFTER_SAMPLE_MS = 300
/** Pause after every daemon has compacted its journal, before the next sample. */
const QUIET_GAP_MS = 200
/** malla's default --sync-interval: how often a daemon reconciles each table with each neighbour. */
const MALLA_ANTI_ENTROPY_S = 60
/** How long the idle traffic of a LibreMesh-mode chain is measured. */
const LM_IDLE_MS = 5000
/** LibreMesh mode: a probe not at the far end after 10 s + 4 s per hop, at most this, ends its samples. */
const LM_SAMPLE_TIMEOUT_MAX_MS = 60_000
/** LibreMesh mode: no new sample starts after this much time spent sampling one chain. */
const LM_SAMPLING_BUDGET_MS = 90_000
const CONV_SEED = 4
/** Appended to the sections of the netns chains' rows. */
const NETNS_SUFFIX = ' (netns)'
const CONV_TIMEOUT_MS = 60_000
/** Above this much resident memory over all daemons of one mesh, the run is abandoned (the machine has 24 GB). */
const RSS_LIMIT_BYTES = 16e9
const MB = 1e6

interface Plan {
  readonly hops: readonly number[]
  readonly mallaReps: number
  readonly lmReps: number
  readonly routers: number
  readonly convRounds: number
}

const FULL: Plan = { hops: [1, 5, 10, 20], mallaReps: 10, lmReps: 3, routers: 100, convRounds: 2 }
const QUICK: Plan = { hops: [1, 5], mallaReps: 3, lmReps: 2, routers: 20, convRounds: 2 }

// ---------------------------------------------------------------- meshes of daemons

/** Runs `fn` over `items` with at most `limit` at a time; results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  let failure: { error: unknown } | undefined
  const worker = async () => {
    // After a failure no new item starts, and every started one is waited for before the error is thrown,
    // so nothing (a daemon, say) is started after the caller has begun cleaning up.
    while (next < items.length && failure === undefined) {
      const i = next++
      try {
        out[i] = await fn(items[i] as T, i)
      } catch (error) {
        failure ??= { error }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failure) throw failure.error
  return out
}

interface Mesh {
  readonly mode: Mode
  readonly daemons: BenchDaemon[]
  /** Each daemon's --data directory. */
  readonly dataDirs: string[]
  /** Each daemon's log length once all were listening: what they log before (a neighbour not up yet) is not reported. */
  readonly logMarks: number[]
  /** Each daemon's log length when the mesh was stopped: what neighbours log while the others stop is not reported. */
  logEnds: number[] | undefined
  /** When (nowMs) the last daemon was listening. */
  startedAt: number
  readonly feeds: ChangeFeed[]
  /** Highest resident memory seen, per daemon and over all of them at once (bytes). */
  readonly rss: { maxOne: number; maxTotal: number }
  /** Set when the memory watchdog gave up on this mesh. */
  aborted: string | undefined
  stop(): Promise<void>
}

/**
 * Starts one daemon per node of an undirected graph, each on a port picked beforehand and given every
 * neighbour with --peer, at most `concurrency` starting at a time; registers their stop with `cleanup`.
 * With `net` (a chain of network namespaces, node i in router i's), each daemon runs in its namespace on
 * `--host :: --port 8080` with `--discover` on its chain veths and no --peer, and the mesh is returned once
 * every daemon has discovered all its neighbours; this process reaches it at its address on its host veth.
 */
async function startMesh(
  ctx: BenchContext,
  cleanup: Cleanup,
  options: { mode: Mode; count: number; edges: ReadonlyArray<readonly [number, number]>; label: string; concurrency: number; startTimeoutMs: number; net?: NetnsChain },
): Promise<Mesh> {
  const { mode, count, edges, net } = options
  if (net && net.routers.length !== count) throw new Error(`${options.label}: ${count} daemons for ${net.routers.length} namespaces`)
  const dir = await cleanup.tempDir(`malla-bench-propagation-${options.label}-`)
  const ports = net ? Array.from({ length: count }, () => NETNS_PORT) : await freePorts(count)
  const neighbours: number[][] = Array.from({ length: count }, () => [])
  for (const [a, b] of edges) {
    ;(neighbours[a] as number[]).push(b)
    ;(neighbours[b] as number[]).push(a)
  }
  const daemons: BenchDaemon[] = []
  const feeds: ChangeFeed[] = []
  let watchdog: NodeJS.Timeout | undefined
  let stopped: Promise<void> | undefined
  const mesh: Mesh = {
    mode,
    daemons,
    dataDirs: ports.map((_, i) => join(dir, `n${i}`)),
    logMarks: [],
    logEnds: undefined,
    startedAt: 0,
    feeds,
    rss: { maxOne: 0, maxTotal: 0 },
    aborted: undefined,
    stop: () =>
      (stopped ??= (async () => {
        clearInterval(watchdog)
        mesh.logEnds = daemons.map((d) => d.log.length)
        for (const f of feeds) f.close()
        await Promise.all(daemons.map((d) => d.stop(3000)))
      })()),
  }
  cleanup.add(`stop the ${options.label} daemons`, () => mesh.stop())
  const modeArgs = mode === 'libremesh' ? ['--mode', 'libremesh', '--sync-interval', String(LM_PERIOD_S)] : []
  const started = nowMs()
  try {
    await mapLimit(ports, options.concurrency, async (port, i) => {
      const name = `n${i}`
      const router = net?.routers[i]
      // In a namespace, this process writes through the API from its own veth: it is the operator there, so that
      // address is let in (--api-allow), as an operator would let in the machine it manages the router from.
      const peers = router
        ? [...router.discover.flatMap((dev) => ['--discover', dev]), '--api-allow', `${router.hostAddress}/32`]
        : (neighbours[i] as number[]).flatMap((j) => ['--peer', `http://127.0.0.1:${ports[j] as number}`])
      // malla nodes sync in pages and need no larger body limit; LibreMesh mode's only sync is the whole table
      // (2.8 MB), which needs one, as a LibreMesh router's table that large would (docs/protocol.md §4.1).
      const bodyArgs = mode === 'libremesh' ? ['--max-body', String(MAX_BODY)] : []
      const d = await startDaemon(
        ['--port', String(port), '--data', mesh.dataDirs[i] as string, '--name', name, ...peers, ...bodyArgs, '--bleach-interval', '3600', ...modeArgs],
        router ? { timeoutMs: options.startTimeoutMs, netns: router.ns, host: '::', base: `http://${router.api}:${port}` } : { timeoutMs: options.startTimeoutMs },
      )
      daemons[i] = d
      if (!d.url.includes(`:${port}/`)) throw new Error(`daemon ${name} listens on ${d.url}, not on port ${port}`)
    })
    mesh.startedAt = nowMs()
    ctx.progress(`${options.label}: ${count} ${mode} daemons listening after ${formatNumber((mesh.startedAt - started) / 1000)} s`)
    if (net) {
      await waitDiscovered(daemons, net, neighbours.map((n) => n.length), DISCOVERY_TIMEOUT_MS)
      ctx.progress(`${options.label}: every daemon has discovered its neighbours (ff02::1) after ${formatNumber((nowMs() - started) / 1000)} s`)
    }
  } catch (e) {
    await mesh.stop()
    throw e
  }
  mesh.logMarks.push(...daemons.map((d) => d.log.length))
  watchdog = setInterval(() => {
    void Promise.all(daemons.map((d) => procMemory(d.pid).then((m) => m.rss, () => 0))).then((rss) => {
      const total = rss.reduce((a, b) => a + b, 0)
      mesh.rss.maxOne = Math.max(mesh.rss.maxOne, ...rss)
      mesh.rss.maxTotal = Math.max(mesh.rss.maxTotal, total)
      if (total > RSS_LIMIT_BYTES && mesh.aborted === undefined) {
        mesh.aborted = `the daemons used ${formatNumber(total / MB)} MB of memory together`
        ctx.progress(`${options.label}: ${mesh.aborted}; giving up on this mesh`)
      }
    })
  }, 1000)
  return mesh
}

/**
 * Netns chains: waits until every daemon's /malla/v1/info lists `expected[i]` discovered neighbours, each on
 * one of its chain veths (http://[fe80::…%25<veth>]:8080), and none other.
 */
async function waitDiscovered(daemons: readonly BenchDaemon[], net: NetnsChain, expected: readonly number[], timeoutMs: number): Promise<void> {
  const deadline = nowMs() + timeoutMs
  for (;;) {
    const infos = await Promise.all(daemons.map((d) => getJson<{ neighbours: Array<{ base: string; source: string }> }>(`${d.base}/malla/v1/info`, 5000)))
    const counts = infos.map((info, i) => {
      const router = net.routers[i] as NetnsChain['routers'][number]
      for (const n of info.neighbours) {
        const zone = /%25([^\]]+)\]/.exec(n.base)?.[1]
        if (n.source !== 'discovered' || zone === undefined || !router.discover.includes(zone)) {
          throw new Error(`${router.name} has a neighbour ${n.base} (${n.source}), not on its chain veths ${router.discover.join(', ')}`)
        }
      }
      return info.neighbours.length
    })
    if (counts.every((c, i) => c >= (expected[i] as number))) return
    if (nowMs() > deadline) throw new Error(`after ${timeoutMs / 1000} s, the daemons had discovered ${counts.join(',')} neighbours (expected ${expected.join(',')})`)
    await sleep(100)
  }
}

/** CPU seconds (user + system) the daemons have used so far, from /proc/<pid>/stat (Linux, 100 ticks per second). */
async function cpuSeconds(daemons: readonly BenchDaemon[]): Promise<number> {
  const ticks = await Promise.all(
    daemons.map(async (d) => {
      try {
        const stat = await readFile(`/proc/${d.pid}/stat`, 'utf8')
        // Fields after the command name (which may hold spaces) start at field 3; utime and stime are fields 14 and 15.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
        return Number(fields[11]) + Number(fields[12])
      } catch {
        return 0
      }
    }),
  )
  return ticks.reduce((a, b) => a + b, 0) / 100
}

function checkMesh(mesh: Mesh): void {
  if (mesh.aborted !== undefined) throw new Error(`mesh abandoned: ${mesh.aborted}`)
}

/** Sum over the daemons of the bytes of the sync exchanges each started (bodies, both directions), and how many. */
/** GET of a daemon's JSON API, bounded; errors say which URL and why. */
async function getJson<T>(url: string, timeoutMs = 20_000): Promise<T> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    if (res.status !== 200) throw new Error(`answered ${res.status}`)
    return (await res.json()) as T
  } catch (e) {
    throw new Error(`GET ${url}: ${(e as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (e as Error).message}`, { cause: e })
  }
}

async function traffic(daemons: readonly BenchDaemon[], timeoutMs = 20_000): Promise<{ bytes: number; exchanges: number }> {
  const infos = await Promise.all(
    daemons.map(async (d) => (await getJson<{ traffic: { exchanges: number; bytesSent: number; bytesReceived: number } }>(`${d.base}/malla/v1/info`, timeoutMs)).traffic),
  )
  return infos.reduce((acc, t) => ({ bytes: acc.bytes + t.bytesSent + t.bytesReceived, exchanges: acc.exchanges + t.exchanges }), { bytes: 0, exchanges: 0 })
}

async function tableSizes(daemons: readonly BenchDaemon[], type: string): Promise<number[]> {
  return Promise.all(
    daemons.map(async (d) => {
      const tables = await getJson<Array<{ flavour: string; type: string; size: number }>>(`${d.base}/malla/v1/tables`)
      return tables.find((t) => t.flavour === 'ttl' && t.type === type)?.size ?? 0
    }),
  )
}

/**
 * Inserts through the daemon's API, as `malla insert --url` does. The answer holds the entries written (the
 * whole table, for the fill): it is read as bytes, not decoded, to keep this process's work small.
 */
async function insert(d: BenchDaemon, type: string, values: Record<string, unknown>, timeoutMs = 60_000): Promise<{ answerBytes: number }> {
  const res = await fetch(`${d.base}/malla/v1/tables/${type}/insert`, {
    method: 'POST',
    body: JSON.stringify(values),
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(timeoutMs),
  })
  const body = await res.arrayBuffer()
  if (res.status !== 200) throw new Error(`insert into ${d.base} answered ${res.status}: ${new TextDecoder().decode(body.slice(0, 200))}`)
  return { answerBytes: body.byteLength }
}

/**
 * Waits until no daemon has a journal for `type`: each compacts a changed table 1 s after its last change
 * (docs/protocol.md §6), a rewrite of the whole 2.8 MB table, so the next sample then meets a quiet mesh.
 */
async function waitCompacted(mesh: Mesh, type: string, timeoutMs = 15_000): Promise<boolean> {
  const deadline = nowMs() + timeoutMs
  for (;;) {
    if (!mesh.dataDirs.some((dir) => existsSync(join(dir, `${type}.json.journal`)))) return true
    if (nowMs() > deadline) return false
    await sleep(50)
  }
}

/** Warnings and errors the daemons logged, counted by message, with one example each. */
function meshLogProblems(mesh: Mesh): Map<string, { count: number; example: string }> {
  const out = new Map<string, { count: number; example: string }>()
  for (const [i, d] of mesh.daemons.entries()) logProblems(d.log.slice(mesh.logMarks[i] ?? 0, mesh.logEnds?.[i] ?? d.log.length), out)
  return out
}

function describeProblems(label: string, problems: Map<string, { count: number; example: string }>): string[] {
  return [...problems].map(([what, { count, example }]) => `${label}: the daemons logged "${what}" ${count}× (e.g. ${example})`)
}

// ---------------------------------------------------------------- 1. chains

interface ChainResult {
  readonly hops: number
  readonly mode: Mode
  readonly fillMs: number
  readonly latencyMs: number[]
  /** malla only: the same, for a change arriving at the head as a push (answer `{}`), not through the insert API. */
  readonly pushLatencyMs: number[]
  /** CPU time all daemons used during the samples, per second of wall time (this machine has 2 cores). */
  readonly cpuBusy: number
  /** Bytes over all links per update (window: just before the insert → far end saw it + settle). */
  readonly bytes: number[]
  readonly exchanges: number[]
  readonly windowMs: number[]
  /** Insert → the API's answer (the entries written) fully received. */
  readonly insertMs: number[]
  readonly insertAnswerBytes: number
  readonly timeouts: number
  readonly sampleTimeoutMs: number
  /** LibreMesh mode: bytes over all links while a probe did not arrive (the sample timeout), if one did not. */
  readonly timedOutBytes: number | undefined
  /** Idle mesh, table in sync: bytes per link per minute (malla: one anti-entropy round; LibreMesh: its periodic syncs). */
  readonly idleBytesPerLinkPerMinute: number | undefined
  readonly idleNote: string | undefined
  readonly maxRssMB: number
  readonly problems: string[]
}

async function chain(ctx: BenchContext, cleanup: Cleanup, hops: number, mode: Mode, reps: number, measureIdle: boolean, net?: NetnsChain): Promise<ChainResult> {
  const label = `chain H=${hops} ${mode}${net ? ' netns' : ''}`
  const edges = Array.from({ length: hops }, (_, i) => [i, i + 1] as const)
  const mesh = await startMesh(ctx, cleanup, { mode, count: hops + 1, edges, label, concurrency: 4, startTimeoutMs: 30_000, net })
  const problems: string[] = []
  try {
    const head = mesh.daemons[0] as BenchDaemon
    const far = mesh.daemons[hops] as BenchDaemon
    const feed = await ChangeFeed.open(far.base, [TABLE])
    mesh.feeds.push(feed)

    // The table, in sync everywhere.
    const fillTimeoutMs = mode === 'malla' ? 60_000 : 30_000 + hops * 3_000
    const fillStart = nowMs()
    // In requests of 2,000 entries (~420 KB): one insert is a body, held to the default 1 MiB limit.
    const records = Object.entries(hostRecords(ENTRIES, 1))
    const filling = (async () => {
      for (let i = 0; i < records.length; i += FILL_BATCH) await insert(head, TABLE, Object.fromEntries(records.slice(i, i + FILL_BATCH)))
    })()
    const filled = await feed.waitFor(() => feed.firstSeen.size >= ENTRIES || mesh.aborted !== undefined, fillTimeoutMs)
    await filling
    checkMesh(mesh)
    if (!filled) throw new Error(`the far end had ${feed.firstSeen.size} of ${ENTRIES} entries after ${fillTimeoutMs / 1000} s`)
    const fillMs = nowMs() - fillStart
    ctx.progress(`${label}: ${ENTRIES.toLocaleString('en-US')} entries at the far end after ${formatNumber(fillMs)} ms`)
    await sleep(SETTLE_AFTER_FILL_MS)
    if (!(await waitCompacted(mesh, TABLE))) problems.push(`${label}: journals still there 15 s after the fill`)
    // (In LibreMesh mode a busy daemon answers reads only after the merges queued before them: not checked there.)
    if (mode === 'malla') {
      await tableSizes(mesh.daemons, TABLE).then(
        (sizes) => {
          if (sizes.some((n) => n !== ENTRIES)) problems.push(`${label}: table sizes after the fill: ${sizes.join(',')} (expected ${ENTRIES} everywhere)`)
        },
        (e: Error) => problems.push(`${label}: table sizes after the fill unavailable: ${e.message}`),
      )
    }

    const latencyMs: number[] = []
    const pushLatencyMs: number[] = []
    const bytes: number[] = []
    const exchanges: number[] = []
    const windowMs: number[] = []
    const insertMs: number[] = []
    let insertAnswerBytes = 0
    let timeouts = 0
    let timedOutBytes: number | undefined
    let probes = 0
    const sampleTimeoutMs = mode === 'malla' ? 10_000 : Math.min(LM_SAMPLE_TIMEOUT_MAX_MS, 10_000 + hops * 4_000)
    const rand = prng(1000 + hops)
    const cpuBefore = await cpuSeconds(mesh.daemons)
    const sampling = nowMs()
    try {
      for (let i = 0; i < reps; i++) {
        checkMesh(mesh)
        if (mode === 'libremesh' && i > 0 && nowMs() - sampling > LM_SAMPLING_BUDGET_MS) {
          ctx.progress(`${label}: ${formatNumber((nowMs() - sampling) / 1000)} s of samples: enough`)
          break
        }
        if (mode === 'malla') {
          // The same change arriving at the head as a push from outside (what a neighbour would send): the
          // mesh's own time, without the insert API in front of it.
          const key = `pushed-${i}`
          const entry = { data: hostRecord(ENTRIES + reps + i, rand), author: 'bench', bleachTTL: 30, clock: String(Date.now()) }
          const t0 = nowMs()
          const pushing = fetch(`${head.base}/cgi-bin/shared-state/${TABLE}`, {
            method: 'POST',
            body: JSON.stringify({ [key]: entry }),
            headers: { 'content-type': 'application/json', 'x-malla-sync': 'push' },
            signal: AbortSignal.timeout(30_000),
          }).then(async (res) => ({ status: res.status, text: await res.text() }))
          const at = await feed.arrival(key, sampleTimeoutMs)
          const pushed = await pushing
          probes++
          if (pushed.status !== 200) throw new Error(`the push to the head answered ${pushed.status}: ${pushed.text.slice(0, 200)}`)
          if (at === undefined) problems.push(`${label}: pushed probe ${i + 1} not at the far end within ${sampleTimeoutMs} ms`)
          else pushLatencyMs.push(at - t0)
          if (!(await waitCompacted(mesh, TABLE))) problems.push(`${label}: journals still there 15 s after pushed probe ${i + 1}`)
          await sleep(QUIET_GAP_MS)
        }
        const key = `probe-${i}`
        const before = await traffic(mesh.daemons)
        const t0 = nowMs()
        const inserting = insert(head, TABLE, { [key]: hostRecord(ENTRIES + i, rand) }).then((r) => ({ ...r, ms: nowMs() - t0 }))
        const at = await feed.arrival(key, sampleTimeoutMs)
        const answered = await inserting
        probes++
        insertMs.push(answered.ms)
        insertAnswerBytes = answered.answerBytes
        if (at === undefined) {
          timeouts++
          ctx.progress(`${label}: sample ${i + 1}: not at the far end within ${sampleTimeoutMs / 1000} s`)
          if (mode === 'libremesh') {
            // What the links carried meanwhile (a lower bound of the update's cost); the next samples would
            // wait as long, so sampling stops here.
            // (Saturated daemons can take long to answer even this.)
            const after = await traffic(mesh.daemons, 60_000)
            timedOutBytes = after.bytes - before.bytes
            ctx.progress(`${label}: meanwhile ${formatNumber(timedOutBytes)} B over ${hops} links in ${after.exchanges - before.exchanges} exchanges`)
            break
          }
          continue
        }
        await sleep(SETTLE_AFTER_SAMPLE_MS)
        const after = await traffic(mesh.daemons)
        const t1 = nowMs()
        latencyMs.push(at - t0)
        bytes.push(after.bytes - before.bytes)
        exchanges.push(after.exchanges - before.exchanges)
        windowMs.push(t1 - t0)
        ctx.progress(
          `${label}: sample ${i + 1}/${reps}: ${formatNumber(at - t0)} ms${mode === 'malla' ? ` (pushed: ${formatNumber(pushLatencyMs[pushLatencyMs.length - 1] ?? Number.NaN)} ms)` : ''}, ${formatNumber(after.bytes - before.bytes)} B over ${hops} link(s) in ${after.exchanges - before.exchanges} exchanges (window ${formatNumber(t1 - t0)} ms)`,
        )
        // Each daemon rewrites the table whole 1 s after its last change (2.8 MB): the next sample waits for
        // that, so every sample measures an update arriving at a quiet mesh.
        if (!(await waitCompacted(mesh, TABLE))) problems.push(`${label}: journals still there 15 s after sample ${i + 1}`)
        await sleep(QUIET_GAP_MS)
      }
    } catch (e) {
      problems.push(`${label}: sampling stopped: ${(e as Error).message}`)
      ctx.progress(`${label}: sampling stopped: ${(e as Error).message}`)
    }
    const cpuCores = (await cpuSeconds(mesh.daemons)) - cpuBefore
    const samplingS = (nowMs() - sampling) / 1000
    // Every probe must have reached every daemon (a chain has no other way round).
    const expected = ENTRIES + probes
    const deadline = nowMs() + 5_000
    if (mode === 'malla') {
      try {
        let final = await tableSizes(mesh.daemons, TABLE)
        while (final.some((n) => n < expected) && nowMs() < deadline) {
          await sleep(250)
          final = await tableSizes(mesh.daemons, TABLE)
        }
        if (final.some((n) => n !== expected)) problems.push(`${label}: table sizes at the end: ${final.join(',')} (expected ${expected})`)
      } catch (e) {
        problems.push(`${label}: table sizes at the end unavailable: ${(e as Error).message}`)
      }
    }
    let idle: { perLinkPerMinute: number; note: string } | undefined
    if (measureIdle) {
      try {
        idle = await idleTraffic(ctx, mesh, label, hops)
      } catch (e) {
        problems.push(`${label}: idle traffic not measured: ${(e as Error).message}`)
      }
    }
    return {
      hops,
      mode,
      fillMs,
      latencyMs,
      pushLatencyMs,
      cpuBusy: cpuCores / samplingS,
      bytes,
      exchanges,
      windowMs,
      insertMs,
      insertAnswerBytes,
      timeouts,
      sampleTimeoutMs,
      timedOutBytes,
      idleBytesPerLinkPerMinute: idle?.perLinkPerMinute,
      idleNote: idle?.note,
      maxRssMB: mesh.rss.maxOne / MB,
      problems,
    }
  } catch (e) {
    throw new Error(`${label}: ${(e as Error).message}`, { cause: e })
  } finally {
    await mesh.stop()
    problems.push(...describeProblems(label, meshLogProblems(mesh)))
  }
}

/**
 * What an idle chain whose tables are in sync sends, per link per minute. malla: one anti-entropy round (every
 * daemon reconciles each table with each neighbour every 60 s by default), waited for; LibreMesh mode: its
 * full-table syncs over a few seconds, scaled to a minute.
 */
async function idleTraffic(ctx: BenchContext, mesh: Mesh, label: string, hops: number): Promise<{ perLinkPerMinute: number; note: string } | undefined> {
  const before = await traffic(mesh.daemons)
  const t0 = nowMs()
  if (mesh.mode === 'libremesh') {
    await sleep(LM_IDLE_MS)
    const after = await traffic(mesh.daemons)
    const seconds = (nowMs() - t0) / 1000
    const perLinkPerMinute = ((after.bytes - before.bytes) / hops / seconds) * 60
    const note = `${label}, idle: ${formatNumber(after.bytes - before.bytes)} B in ${after.exchanges - before.exchanges} exchanges over ${formatNumber(seconds)} s`
    ctx.progress(note)
    return { perLinkPerMinute, note }
  }
  // Every daemon reconciles with each of its neighbours once per round: 2 exchanges per link.
  const deadline = mesh.startedAt + (MALLA_ANTI_ENTROPY_S + 15) * 1000
  ctx.progress(`${label}: waiting up to ${formatNumber((deadline - nowMs()) / 1000)} s for the first anti-entropy round`)
  let now = before
  while (now.exchanges - before.exchanges < 2 * hops && nowMs() < deadline) {
    await sleep(250)
    now = await traffic(mesh.daemons)
  }
  if (now.exchanges - before.exchanges < 2 * hops) {
    ctx.progress(`${label}: no anti-entropy round within ${MALLA_ANTI_ENTROPY_S + 15} s of the start`)
    return undefined
  }
  await sleep(1000)
  const after = await traffic(mesh.daemons)
  const note = `${label}, one anti-entropy round (tables in sync): ${formatNumber(after.bytes - before.bytes)} B in ${after.exchanges - before.exchanges} exchanges`
  ctx.progress(note)
  return { perLinkPerMinute: ((after.bytes - before.bytes) / hops) * (60 / MALLA_ANTI_ENTROPY_S), note }
}

// ---------------------------------------------------------------- 2. 100 routers

interface ConvRound {
  readonly mode: Mode
  readonly round: number
  readonly finished: boolean
  /** Insert → every router's feed has all keys (or the timeout, when not finished). */
  readonly totalMs: number
  /** Per router that finished: insert → it had all keys. */
  readonly perRouterMs: number[]
  readonly routersDone: number
  /** Router-key pairs delivered / routers². */
  readonly delivered: number
  readonly bytes: number
  readonly exchanges: number
  /** CPU time all daemons used from the inserts to the end of the round, per second of wall time. */
  readonly cpuBusy: number
}

interface ConvResult {
  readonly mode: Mode
  readonly rounds: ConvRound[]
  readonly maxRssMB: number
  readonly maxTotalRssMB: number
  readonly problems: string[]
}

/** Hops between every pair of routers (-1: not connected), breadth first from each. */
function distances(n: number, edges: ReadonlyArray<readonly [number, number]>): { adj: number[][]; dist: number[][] } {
  const adj: number[][] = Array.from({ length: n }, () => [])
  for (const [a, b] of edges) {
    ;(adj[a] as number[]).push(b)
    ;(adj[b] as number[]).push(a)
  }
  const dist = Array.from({ length: n }, (_, s) => {
    const d = new Array<number>(n).fill(-1)
    d[s] = 0
    const queue = [s]
    for (let q = 0; q < queue.length; q++) {
      const u = queue[q] as number
      for (const v of adj[u] as number[]) {
        if (d[v] === -1) {
          d[v] = (d[u] as number) + 1
          queue.push(v)
        }
      }
    }
    return d
  })
  return { adj, dist }
}

function diameter(n: number, edges: ReadonlyArray<readonly [number, number]>): number {
  const { dist } = distances(n, edges)
  return dist.some((d) => d.includes(-1)) ? Number.POSITIVE_INFINITY : Math.max(...dist.map((d) => Math.max(...d)))
}

/**
 * Exchanges of an ideal push-on-change flood of one key from every router, in lock-step rounds: at round k + 1
 * each router pushes what it first got at round k (its own key at 0) to every neighbour, except to the one
 * neighbour that alone brought all of it. What any protocol that forwards a change as soon as it has it,
 * without waiting for more, makes at least on this topology (coalescing under load can only merge rounds).
 */
function pushFloodExchanges(n: number, edges: ReadonlyArray<readonly [number, number]>): number {
  const { adj, dist } = distances(n, edges)
  const at = (s: number, u: number) => (dist[s] as number[])[u] as number
  let pushes = 0
  for (let u = 0; u < n; u++) {
    const byRound = new Map<number, number[]>()
    for (let s = 0; s < n; s++) byRound.set(at(s, u), [...(byRound.get(at(s, u)) ?? []), s])
    for (const v of adj[u] as number[]) {
      for (const [k, sources] of byRound) {
        const onlyFromV = k > 0 && sources.every((s) => at(s, v) === k - 1 && (adj[u] as number[]).filter((w) => at(s, w) === k - 1).length === 1)
        if (!onlyFromV) pushes++
      }
    }
  }
  return pushes
}

async function convergence(ctx: BenchContext, cleanup: Cleanup, mode: Mode, routers: number, edges: ReadonlyArray<readonly [number, number]>, rounds: number): Promise<ConvResult> {
  const label = `${routers} routers ${mode}`
  const mesh = await startMesh(ctx, cleanup, { mode, count: routers, edges, label, concurrency: 6, startTimeoutMs: 60_000 })
  const problems: string[] = []
  const results: ConvRound[] = []
  try {
    mesh.feeds.push(...(await mapLimit(mesh.daemons, 20, (d) => ChangeFeed.open(d.base, [CONV_TABLE], 20_000))))
    const rand = prng(77)
    for (let r = 0; r < rounds; r++) {
      checkMesh(mesh)
      if (r > 0) await sleep(2000)
      const keys = mesh.daemons.map((_, i) => `r${r}-n${i}`)
      const before = await traffic(mesh.daemons)
      const cpuBefore = await cpuSeconds(mesh.daemons)
      const t0 = nowMs()
      const inserting = Promise.all(mesh.daemons.map((d, i) => insert(d, CONV_TABLE, { [keys[i] as string]: hostRecord(i, rand) }, CONV_TIMEOUT_MS)))
      const all = (f: ChangeFeed) => keys.every((k) => f.firstSeen.has(k))
      const deadline = t0 + CONV_TIMEOUT_MS
      const done = await Promise.all(mesh.feeds.map((f) => f.waitFor(() => all(f) || mesh.aborted !== undefined, Math.max(0, deadline - nowMs()))))
      const finished = done.every(Boolean) && mesh.feeds.every(all)
      const tEnd = nowMs()
      await inserting.catch((e: Error) => problems.push(`${label}: an insert failed: ${e.message}`))
      const perRouterMs = mesh.feeds.filter(all).map((f) => Math.max(...keys.map((k) => f.firstSeen.get(k) as number)) - t0)
      const delivered = mesh.feeds.reduce((acc, f) => acc + keys.filter((k) => f.firstSeen.has(k)).length, 0) / (routers * routers)
      await sleep(SETTLE_AFTER_SAMPLE_MS)
      const after = await traffic(mesh.daemons)
      const cpuBusy = ((await cpuSeconds(mesh.daemons)) - cpuBefore) / ((nowMs() - t0) / 1000)
      const totalMs = finished ? Math.max(...perRouterMs) : tEnd - t0
      results.push({ mode, round: r + 1, finished, totalMs, perRouterMs, routersDone: perRouterMs.length, delivered, bytes: after.bytes - before.bytes, exchanges: after.exchanges - before.exchanges, cpuBusy })
      ctx.progress(
        `${label} round ${r + 1}: ${finished ? `converged in ${formatNumber(totalMs)} ms` : `NOT converged after ${formatNumber(totalMs)} ms: ${perRouterMs.length}/${routers} routers complete, ${(delivered * 100).toFixed(1)}% of keys delivered`}; ${formatNumber(after.bytes - before.bytes)} B in ${after.exchanges - before.exchanges} exchanges`,
      )
      checkMesh(mesh)
    }
    return { mode, rounds: results, maxRssMB: mesh.rss.maxOne / MB, maxTotalRssMB: mesh.rss.maxTotal / MB, problems }
  } finally {
    await mesh.stop()
    problems.push(...describeProblems(label, meshLogProblems(mesh)))
  }
}

// ---------------------------------------------------------------- the report

const perLink = (r: ChainResult): number[] => r.bytes.map((b) => b / r.hops)
const maybeSummary = (values: readonly number[]): Summary | undefined => (values.length > 0 ? summarize(values) : undefined)

interface ChainPair {
  readonly hops: number
  malla?: ChainResult
  mallaError?: string
  lm?: ChainResult
  lmError?: string
  /** Loopback only: the same pushed changes along a chain of plain Node HTTP relays (bench/lib/relay-floor.ts). */
  floorMs?: number[]
}

const hopsName = (h: number): string => `${h} hop${h === 1 ? '' : 's'}`

/** LibreMesh mode's figure for a chain: its samples, or, when none arrived in time, the timeout as a lower bound. */
function lmLatencyBaseline(lm: ChainResult | undefined, lmName: string): { name: string; value: Summary | number } | undefined {
  if (!lm) return undefined
  const s = maybeSummary(lm.latencyMs)
  if (s) return { name: lmName, value: s }
  if (lm.timeouts > 0) return { name: `${lmName}: > ${lm.sampleTimeoutMs / 1000} s, never arrived`, value: lm.sampleTimeoutMs }
  return undefined
}

function lmBytesBaseline(lm: ChainResult | undefined, lmName: string): { name: string; value: Summary | number } | undefined {
  if (!lm) return undefined
  const s = maybeSummary(perLink(lm))
  if (s) return { name: lmName, value: s }
  if (lm.timedOutBytes !== undefined) return { name: `${lmName}: > this, in ${lm.sampleTimeoutMs / 1000} s, never arrived`, value: lm.timedOutBytes / lm.hops }
  return undefined
}

/** Notes on each chain of one variant (`prefix`: '' for loopback, 'netns '): fill, exchanges, CPU, failures, per-hop slopes. */
function chainNotes(chains: readonly ChainPair[], prefix: string): string[] {
  const notes: string[] = []
  const fmtMedian = (v: readonly number[]) => formatNumber(maybeSummary(v)?.median ?? Number.NaN)
  for (const { hops, malla, mallaError, lm, lmError } of chains) {
    const parts: string[] = []
    if (malla) {
      parts.push(
        `malla: fill reached the far end in ${formatNumber(malla.fillMs)} ms; per update ${fmtMedian(malla.exchanges)} exchanges, ${fmtMedian(malla.bytes)} B over all links; p90 ${formatNumber(maybeSummary(malla.latencyMs)?.p90 ?? Number.NaN)} ms`,
      )
      const ins = maybeSummary(malla.insertMs)
      if (ins) parts.push(`the insert API answered (the entry written, ${formatNumber(malla.insertAnswerBytes)} B) after ${formatNumber(ins.median)} ms (median)`)
      if (malla.timeouts > 0) parts.push(`${malla.timeouts} sample(s) timed out`)
      parts.push(`daemons' CPU use during the samples ${formatNumber(malla.cpuBusy)} cores of 2; max RSS of one daemon ${formatNumber(malla.maxRssMB)} MB`)
    }
    if (mallaError) parts.push(`malla FAILED: ${mallaError}`)
    if (lm) {
      parts.push(
        `LibreMesh mode: fill reached the far end in ${formatNumber(lm.fillMs)} ms; ` +
          (lm.latencyMs.length > 0
            ? `${lm.latencyMs.length} sample(s) arrived (${lm.latencyMs.map((v) => formatNumber(v)).join(', ')} ms), windows ${fmtMedian(lm.windowMs)} ms, ${fmtMedian(lm.bytes)} B over all links per update`
            : 'no sample arrived'),
      )
      if (lm.timeouts > 0) parts.push(`${lm.timeouts} probe(s) not at the far end within ${lm.sampleTimeoutMs / 1000} s${lm.timedOutBytes === undefined ? '' : `, ${formatNumber(lm.timedOutBytes)} B over all links meanwhile`}`)
      parts.push(`daemons' CPU use during the samples ${formatNumber(lm.cpuBusy)} cores of 2; max RSS of one daemon ${formatNumber(lm.maxRssMB)} MB`)
    }
    if (lmError) parts.push(`LibreMesh mode FAILED: ${lmError}`)
    notes.push(`${prefix}H=${hops}: ${parts.join('; ')}.`)
  }
  const withLatency = chains.filter((c) => (c.malla?.latencyMs.length ?? 0) > 0)
  const first = withLatency[0]
  const last = withLatency[withLatency.length - 1]
  if (first?.malla && last?.malla && last.hops > first.hops) {
    const slope = (median(last.malla.latencyMs) - median(first.malla.latencyMs)) / (last.hops - first.hops)
    const pushSlope = (median(last.malla.pushLatencyMs) - median(first.malla.pushLatencyMs)) / (last.hops - first.hops)
    notes.push(`${prefix}malla: each further hop adds ${formatNumber(slope)} ms to an insert, ${formatNumber(pushSlope)} ms to a pushed change (medians, H=${first.hops} → H=${last.hops}).`)
  }
  const lmDone = chains.filter((c) => (c.lm?.latencyMs.length ?? 0) > 0)
  if (lmDone.length >= 2) {
    const a = lmDone[0] as ChainPair
    const b = lmDone[lmDone.length - 1] as ChainPair
    const slope = (median((b.lm as ChainResult).latencyMs) - median((a.lm as ChainResult).latencyMs)) / (b.hops - a.hops)
    notes.push(`${prefix}LibreMesh mode: each further hop added ${formatNumber(slope)} ms (medians, H=${a.hops} → H=${b.hops}, where it still kept up).`)
  }
  for (const c of chains) for (const r of [c.malla, c.lm]) if (r?.idleNote) notes.push(r.idleNote + '.')
  return notes
}

/** The chain rows of one variant (`where`: '' for loopback, ' (netns)'), each against LibreMesh mode in the same variant. */
function chainRows(chains: readonly ChainPair[], where: string, lmName: string): BenchRow[] {
  const rows: BenchRow[] = []
  for (const { hops, malla, lm } of chains) {
    const value = malla && maybeSummary(malla.latencyMs)
    if (!value) continue
    rows.push(
      row({
        section: `one insert → far end feed${where}`,
        name: hopsName(hops),
        n: ENTRIES,
        unit: 'ms',
        value,
        baseline: lmLatencyBaseline(lm, lmName),
        target: hops === LATENCY_TARGET_HOPS ? LATENCY_TARGET_MS : undefined,
      }),
    )
  }
  for (const { hops, malla, lm } of chains) {
    const value = malla && maybeSummary(malla.pushLatencyMs)
    if (!value) continue
    rows.push(row({ section: `same change pushed into one end${where}`, name: hopsName(hops), n: ENTRIES, unit: 'ms', value, baseline: lmLatencyBaseline(lm, lmName), target: hops === FLOOR_TARGET_HOPS && where === '' ? FLOOR_TARGET_MS : undefined }))
  }
  for (const { hops, malla, floorMs } of chains) {
    const value = malla && maybeSummary(malla.pushLatencyMs.map((ms) => ms / hops))
    const floor = floorMs && maybeSummary(floorMs.map((ms) => ms / hops))
    if (!value || !floor) continue
    rows.push(row({ section: 'per hop, a pushed change', name: hopsName(hops), n: ENTRIES, unit: 'ms', value, baseline: { name: 'relay floor (plain Node HTTP relays)', value: floor } }))
  }
  for (const { hops, malla, lm } of chains) {
    const value = malla && maybeSummary(perLink(malla))
    if (!value) continue
    rows.push(
      row({
        section: `bytes per update, per link${where}`,
        name: hopsName(hops),
        n: ENTRIES,
        unit: 'B',
        value,
        baseline: lmBytesBaseline(lm, lmName),
        target: BYTES_PER_LINK_TARGET,
      }),
    )
  }
  const idleChain = chains.find((c) => c.malla?.idleBytesPerLinkPerMinute !== undefined)
  if (idleChain?.malla) {
    const lmIdle = idleChain.lm?.idleBytesPerLinkPerMinute
    rows.push(
      row({
        section: `idle, table in sync${where}`,
        name: `bytes per link per minute (${hopsName(idleChain.hops)})`,
        n: ENTRIES,
        unit: 'B',
        value: idleChain.malla.idleBytesPerLinkPerMinute as number,
        baseline: lmIdle === undefined ? undefined : { name: lmName, value: lmIdle },
      }),
    )
  }
  return rows
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const base = ctx.args.includes('--quick') ? QUICK : FULL
  // `--routers-only`: part 2 alone (the chains take a quarter of an hour); its rows and notes only.
  const plan: Plan = ctx.args.includes('--routers-only') ? { ...base, hops: [] } : base
  const cleanup = new Cleanup()
  const chains: ChainPair[] = []
  const netnsChains: ChainPair[] = []
  const netnsNotRun = await netnsUnavailable()
  const notes: string[] = []
  const problems: string[] = []
  const convEdges = links(plan.routers, 'random', CONV_SEED)
  const convDiameter = diameter(plan.routers, convEdges)
  const convFloodExchanges = pushFloodExchanges(plan.routers, convEdges)
  let convMalla: ConvResult | undefined
  let convMallaError: string | undefined
  let convLm: ConvResult | undefined
  let convLmError: string | undefined
  const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<{ value?: T; error?: string }> => {
    try {
      return { value: await fn() }
    } catch (e) {
      const error = (e as Error).message
      ctx.progress(`${what} failed: ${error}`)
      return { error }
    }
  }
  try {
    for (const hops of plan.hops) {
      const idle = hops === plan.hops[0]
      const pair: ChainPair = { hops }
      const m = await attempt(`chain H=${hops} malla`, () => chain(ctx, cleanup, hops, 'malla', plan.mallaReps, idle))
      pair.malla = m.value
      pair.mallaError = m.error
      const l = await attempt(`chain H=${hops} libremesh`, () => chain(ctx, cleanup, hops, 'libremesh', plan.lmReps, idle))
      pair.lm = l.value
      pair.lmError = l.error
      const rand = prng(5000 + hops)
      const bodies = Array.from({ length: plan.mallaReps }, (_, i) => {
        const key = `floor-${i}`
        return { key, body: JSON.stringify({ [key]: { data: hostRecord(ENTRIES + i, rand), author: 'bench', bleachTTL: 30, clock: String(Date.now()) } }) }
      })
      const f = await attempt(`relay floor H=${hops}`, () => relayFloor(cleanup, hops, bodies))
      pair.floorMs = f.value
      if (f.value) ctx.progress(`relay floor H=${hops}: median ${formatNumber(median(f.value))} ms over ${f.value.length} changes`)
      problems.push(...(pair.malla?.problems ?? []), ...(pair.lm?.problems ?? []))
      chains.push(pair)
    }
    if (netnsNotRun !== undefined) ctx.progress(`netns chains: not run: ${netnsNotRun}`)
    else {
      for (const hops of plan.hops) {
        const idle = hops === plan.hops[0]
        const pair: ChainPair = { hops }
        netnsChains.push(pair)
        // Namespaces for both modes, one after the other: each mode starts fresh daemons in them.
        const opened = await attempt(`netns chain H=${hops}: namespaces`, () => openNetnsChain(hops))
        const net = opened.value
        if (!net) {
          pair.mallaError = pair.lmError = `the network namespaces were not set up: ${opened.error}`
          continue
        }
        cleanup.add(`delete the namespaces of netns chain H=${hops}`, () => net.close())
        try {
          ctx.progress(`netns chain H=${hops}: ${net.routers.length} namespaces malla-${net.runId}-n0..n${hops}, API via ${net.routers.map((r) => r.api).join(', ')}`)
          const m = await attempt(`chain H=${hops} malla netns`, () => chain(ctx, cleanup, hops, 'malla', plan.mallaReps, idle, net))
          pair.malla = m.value
          pair.mallaError = m.error
          const l = await attempt(`chain H=${hops} libremesh netns`, () => chain(ctx, cleanup, hops, 'libremesh', plan.lmReps, idle, net))
          pair.lm = l.value
          pair.lmError = l.error
          problems.push(...(pair.malla?.problems ?? []), ...(pair.lm?.problems ?? []))
        } finally {
          await net.close().catch((e: Error) => problems.push(`netns chain H=${hops}: ${e.message}`))
        }
      }
    }
    ctx.progress(`${plan.routers} routers: random topology, seed ${CONV_SEED}, ${convEdges.length} links, diameter ${convDiameter}`)
    const cm = await attempt(`${plan.routers} routers malla`, () => convergence(ctx, cleanup, 'malla', plan.routers, convEdges, plan.convRounds))
    convMalla = cm.value
    convMallaError = cm.error
    const cl = await attempt(`${plan.routers} routers libremesh`, () => convergence(ctx, cleanup, 'libremesh', plan.routers, convEdges, 1))
    convLm = cl.value
    convLmError = cl.error
    problems.push(...(convMalla?.problems ?? []), ...(convLm?.problems ?? []))
  } finally {
    await cleanup.run()
  }

  const lmName = `LibreMesh mode, P = ${LM_PERIOD_S} s`
  const rows: BenchRow[] = [...chainRows(chains, '', lmName), ...chainRows(netnsChains, NETNS_SUFFIX, lmName)]
  const convSection = `${plan.routers} routers, all insert at once`
  const lmConv = convLm?.rounds[0]
  const lmTimeName = lmConv?.finished ? lmName : `${lmName}: > ${CONV_TIMEOUT_MS / 1000} s, not converged`
  for (const r of convMalla?.rounds ?? []) {
    const what = r.round === 1 ? 'first exchanges' : 'neighbours known'
    if (r.finished) {
      rows.push(
        row({
          section: convSection,
          name: `until every router has all ${plan.routers} keys (${what})`,
          n: plan.routers,
          unit: 'ms',
          value: r.totalMs,
          baseline: lmConv ? { name: lmTimeName, value: lmConv.totalMs } : undefined,
        }),
      )
      rows.push(
        row({
          section: convSection,
          name: `per router, until it has all keys (${what})`,
          n: plan.routers,
          unit: 'ms',
          value: summarize(r.perRouterMs),
          baseline: lmConv?.finished ? { name: lmName, value: summarize(lmConv.perRouterMs) } : undefined,
        }),
      )
    }
    const lmCountName = lmConv?.finished ? lmName : `${lmName}: in ${CONV_TIMEOUT_MS / 1000} s, not converged`
    for (const [what2, unit, value, lmValue] of [
      ['exchanges', 'exchanges', r.exchanges, lmConv?.exchanges],
      ['bytes', 'B', r.bytes, lmConv?.bytes],
    ] as const) {
      rows.push(
        row({
          section: convSection,
          name: `${what2} over all links (${what})${r.finished ? '' : ', NOT converged'}`,
          n: plan.routers,
          unit,
          value,
          baseline: lmValue !== undefined ? { name: lmCountName, value: lmValue } : undefined,
        }),
      )
    }
  }

  notes.push(
    `Chains: H + 1 daemons (\`malla peer\`, built CLI) on 127.0.0.1, each given both neighbours with --peer, --bleach-interval 3600 (LibreMesh mode also --max-body ${MAX_BODY}: its whole-table sync of ~2.8 MB needs it; malla mode runs with the default 1 MiB, as it syncs in pages), malla's default --sync-interval (60 s); table "${TABLE}" of ${ENTRIES.toLocaleString('en-US')} entries (~200 B of data each, ~2.8 MB as JSON) inserted at one end in requests of ${FILL_BATCH.toLocaleString('en-US')}, then ${SETTLE_AFTER_FILL_MS / 1000} s to settle.`,
    `A sample: one key inserted at one end (POST /malla/v1/tables/${TABLE}/insert); time = from sending it to the far end's change feed (SSE, subscribed beforehand) delivering it; bytes = growth, over all daemons, of /malla/v1/info traffic (bytesSent + bytesReceived of the exchanges each started: request and answer bodies, no HTTP headers) from just before the insert to ${SETTLE_AFTER_SAMPLE_MS} ms after the far end saw it, divided by H. Before each sample, every daemon has compacted its journal (it rewrites the 2.8 MB table 1 s after its last change), so each update meets a quiet mesh.`,
    `"same change pushed into one end": before each API sample, a new key is POSTed to the head's /cgi-bin/shared-state/${TABLE} as a malla push (x-malla-sync: push, one entry with a clock), as a neighbour would send it, so this is the mesh's own time, without the insert API in front of it. Its baseline is LibreMesh mode's insert figure.`,
    '"per hop, a pushed change": the pushed figure divided by the hops, against the relay floor measured in the same run: H + 1 plain Node processes on loopback, each reading the same kind of body, parsing it and forwarding it at once over a kept-alive HTTP connection, the last reporting it on a streaming GET (bench/lib/relay-floor.ts). Nothing there stores or merges: it is what processes, sockets and HTTP cost on this machine. Loopback chains only.',
    `Baseline: the same daemons with --mode libremesh --sync-interval ${LM_PERIOD_S} (every daemon POSTs its whole table to each neighbour every ${LM_PERIOD_S} s and nothing else), same table and probes, up to ${plan.lmReps} samples per H (sampling stops at the first probe that does not arrive within 10 s + 4 s per hop, at most ${LM_SAMPLE_TIMEOUT_MAX_MS / 1000} s, or after ${LM_SAMPLING_BUDGET_MS / 1000} s of samples; the baseline is then that bound, and its bytes what the links carried meanwhile: both lower bounds); its bytes are everything the links carried in the window, i.e. the periodic full-table syncs. All daemons share this machine's 2 cores: in LibreMesh mode each full-table sync parses, merges and answers ~2.8 MB on both sides, so long chains saturate the CPUs here (see "CPU use" below), unlike real routers that each have their own CPU. The daemons count only exchanges that got an answer (src/sync/neighbour-sync.ts), so full-table POSTs that timed out (see the "sync failed" counts below) are missing from LibreMesh mode's bytes where it was saturated: there they are lower bounds.`,
    `Idle: what an H=${plan.hops[0]} chain sends with the table in sync and no update: malla = one round of its periodic reconciliation (every ${MALLA_ANTI_ENTROPY_S} s: bucket digests, docs/protocol.md §9.3), LibreMesh mode = its full-table syncs, ${LM_IDLE_MS / 1000} s measured, scaled to a minute.`,
    `${plan.routers} routers: \`malla lab --topology random\`'s generator (random spanning tree + ${Math.floor(plan.routers / 2)} extra links), seed ${CONV_SEED}: ${convEdges.length} links, diameter ${convDiameter}; each router's --peer list = its neighbours. Every router inserts one key into "${CONV_TABLE}" at once (${plan.routers} concurrent POSTs); time until every router's feed has delivered all ${plan.routers} keys (bounded at ${CONV_TIMEOUT_MS / 1000} s). In malla mode, round 1 is the first traffic ever between the neighbours of the "${CONV_TABLE}" table (each neighbour's first exchange is a push, whose answer says the neighbour speaks malla; before it, only the routers' own malla-links entries have travelled), round 2 repeats with new keys 2 s later. LibreMesh mode runs one round; its figure is the baseline of both.`,
    `${plan.routers} routers, exchanges: an ideal push flood of these ${plan.routers} keys on this topology (every router forwards, in lock-step rounds, what it got in the last round to every neighbour but the one that alone brought it) makes ${convFloodExchanges.toLocaleString('en-US')} exchanges: what a protocol that forwards each change as soon as it has it makes on a quiet mesh. A loaded mesh makes fewer, because its changes wait in queues and rounds merge; making fewer on purpose means waiting to batch, which every single change then pays in latency at every hop. LibreMesh mode syncs each link once per period however much changed; its count here is what its saturated daemons completed in the window.`,
  )
  notes.push(
    netnsNotRun === undefined
      ? `Netns chains (sections "…${NETNS_SUFFIX}"): the same chains, modes, table, samples and byte counts, with each of the H + 1 daemons in its own network namespace (malla-<run id>-n<i>), made by \`malla lab --netns\`'s own code (src/node/lab/netns-lab.ts: planNetns, setUpNetns, tearDownNetns): one veth pair per chain link, IPv6 on without DAD, an IPv4 /30 per link (10.99.<link>.1/.2). Every daemon runs in its namespace as \`malla peer --host :: --port ${NETNS_PORT}\` with --discover on its chain veths and no --peer: it finds its neighbours as LibreMesh does, by pinging ff02::1 (at start and every 30 s, the default), and syncs with them at http://[fe80::…%25<veth>]:${NETNS_PORT}; the fill starts only once every daemon's /malla/v1/info lists its discovered neighbours (and only those, each on one of its chain veths). The namespaces are shared by both modes of one H (fresh daemons and data each time) and deleted after it. This process reaches each daemon's API (insert, the push, /malla/v1/info, /malla/v1/tables, the far end's change feed) through one more veth pair per namespace to the host's namespace, with a /30 from the lab's plan after the chain's links (host 10.99.<H+i>.1, namespace 10.99.<H+i>.2), checked beforehand to overlap no route or address of the host's and checked with \`ip route get\` to leave by its own veth; the daemons never probe that veth. So the requests, timers, feed and counters are the loopback ones, over a veth instead of lo (both in-kernel; a veth adds microseconds per packet, not a measurable share of these figures); the traffic counters count only the daemons' sync exchanges on the chain, never this process's requests. Data directories are on the host's file system (the journal checks read them directly) and /proc gives each daemon's CPU time and memory, as on loopback (\`ip netns exec\` execs the daemon in place). Every namespace (and so every veth) is deleted at the end of its H, at a crash (process 'exit') or at SIGINT/SIGTERM/SIGHUP; \`malla lab --clean\` removes what a SIGKILL left.`
      : `Netns chains: NOT RUN: ${netnsNotRun}. Run the benchmark as root on Linux (with iproute2 and iputils-ping) for the "…${NETNS_SUFFIX}" rows: each router in its own network namespace, linked by veth pairs.`,
  )
  notes.push(...chainNotes(chains, ''))
  if (netnsNotRun === undefined) notes.push(...chainNotes(netnsChains, 'netns '))
  for (const [name, conv, error] of [['malla', convMalla, convMallaError], ['LibreMesh mode', convLm, convLmError]] as const) {
    if (error) notes.push(`${plan.routers} routers, ${name}: FAILED: ${error}`)
    if (!conv) continue
    const rounds = conv.rounds.map(
      (r) =>
        `round ${r.round}: ${r.finished ? `converged in ${formatNumber(r.totalMs)} ms` : `NOT converged in ${formatNumber(r.totalMs)} ms (${r.routersDone}/${plan.routers} routers had every key, ${(r.delivered * 100).toFixed(1)}% of router-key pairs delivered)`}, ${formatNumber(r.bytes)} B in ${r.exchanges} exchanges, daemons' CPU use ${formatNumber(r.cpuBusy)} cores of 2`,
    )
    notes.push(`${plan.routers} routers, ${name}: ${rounds.join('; ')}; max RSS of one daemon ${formatNumber(conv.maxRssMB)} MB, of all ${formatNumber(conv.maxTotalRssMB)} MB.`)
  }
  notes.push(...problems)

  return {
    title: 'time and bytes for one change to cross a mesh of real daemons, vs LibreMesh mode (full-table sync every 1 s)',
    rows,
    notes,
    params: {
      entries: ENTRIES,
      hops: plan.hops,
      mallaReps: plan.mallaReps,
      libremeshReps: plan.lmReps,
      libremeshPeriodS: LM_PERIOD_S,
      maxBody: MAX_BODY,
      targets: { latencyMs: LATENCY_TARGET_MS, latencyHops: LATENCY_TARGET_HOPS, bytesPerLink: BYTES_PER_LINK_TARGET },
      chains: chains.map((c) => ({
        hops: c.hops,
        malla: c.malla ? rawChain(c.malla) : { error: c.mallaError },
        libremesh: c.lm ? rawChain(c.lm) : { error: c.lmError },
      })),
      netns:
        netnsNotRun === undefined
          ? {
              run: true,
              port: NETNS_PORT,
              neighbours: 'discovered (--discover on the chain veths, ping ff02::1)',
              chains: netnsChains.map((c) => ({
                hops: c.hops,
                malla: c.malla ? rawChain(c.malla) : { error: c.mallaError },
                libremesh: c.lm ? rawChain(c.lm) : { error: c.lmError },
              })),
            }
          : { run: false, notRun: netnsNotRun },
      convergence: {
        routers: plan.routers,
        seed: CONV_SEED,
        links: convEdges.length,
        diameter: convDiameter,
        pushFloodExchanges: convFloodExchanges,
        malla: convMalla ? rawConv(convMalla) : { error: convMallaError },
        libremesh: convLm ? rawConv(convLm) : { error: convLmError },
      },
    },
  }
}

const round1 = (v: number): number => Math.round(v * 10) / 10

function rawChain(r: ChainResult): Record<string, unknown> {
  return {
    fillMs: round1(r.fillMs),
    latencyMs: r.latencyMs.map(round1),
    pushedLatencyMs: r.pushLatencyMs.map(round1),
    cpuBusyCores: Math.round(r.cpuBusy * 100) / 100,
    bytesAllLinks: r.bytes,
    exchanges: r.exchanges,
    windowMs: r.windowMs.map(round1),
    insertMs: r.insertMs.map(round1),
    insertAnswerBytes: r.insertAnswerBytes,
    idleBytesPerLinkPerMinute: r.idleBytesPerLinkPerMinute === undefined ? undefined : Math.round(r.idleBytesPerLinkPerMinute),
    timeouts: r.timeouts,
    maxRssMB: round1(r.maxRssMB),
  }
}

function rawConv(c: ConvResult): Record<string, unknown> {
  return {
    maxRssMB: round1(c.maxRssMB),
    maxTotalRssMB: round1(c.maxTotalRssMB),
    rounds: c.rounds.map((r) => ({
      round: r.round,
      finished: r.finished,
      totalMs: round1(r.totalMs),
      perRouterMs: r.perRouterMs.map(round1),
      routersDone: r.routersDone,
      delivered: r.delivered,
      bytes: r.bytes,
      exchanges: r.exchanges,
      cpuBusyCores: Math.round(r.cpuBusy * 100) / 100,
    })),
  }
}
