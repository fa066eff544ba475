/**
 * `npm run bench -- merge`: what malla's merge rule costs, against LibreMesh's plain rule measured in
 * the same run, for tables of 100, 1,000 and 10,000 entries of ~200 bytes of JSON data each; plus the
 * insert rate (pure core and durable on disk), the bytes of one full-table sync, and the resident
 * memory of a real daemon holding 10 types × 10,000 entries, and of one holding a single 100,000-entry table
 * (idle, filled, peak) with the cost of one insert through its API at 1,000 and at 100,000 entries.
 */
import { gzipSync } from 'node:zlib'
import { WriteClock } from '../src/core/clock.js'
import { parseTable, serializeTable } from '../src/core/schema.js'
import { bleachTable, insertEntries, mergeTable } from '../src/core/table-ops.js'
import type { Entry, Json, Table, TypeName } from '../src/core/types.js'
import { FileStore } from '../src/node/storage/file-store.js'
import { Replica } from '../src/replica/replica.js'
import { MemoryStore } from '../src/storage/memory-store.js'
import { Cleanup } from './lib/cleanup.js'
import { hostRecord, prng } from './lib/data.js'
import { procMemory, sampleRss, sleep, startDaemon } from './lib/daemon.js'
import { formatNumber } from './lib/format.js'
import { postText } from './lib/http.js'
import { row, type BenchContext, type BenchResult, type BenchRow } from './lib/result.js'
import { mapSummary, median, summarize, type Summary } from './lib/stats.js'
import { heapUsedAfterGc } from './lib/memory.js'
import { compareCases, consume, nowNs, msSince, type Case } from './lib/timing.js'
import { footprintRun, type FootprintRun } from './lib/footprint.js'
import { DAEMON_V8_FLAGS, LEAN_BELOW_BYTES, type MemoryMode } from '../src/node/daemon/heap-tuning.js'
import { tablePacking } from '../src/node/daemon/table-packing.js'
import { PackedTable } from '../src/core/packed-table.js'

const SIZES = [100, 1_000, 10_000] as const
/** Repetitions per table size: small tables take microseconds, so they get more rounds. */
const MERGE_REPS: Record<number, { minReps: number; minTimeMs: number }> = {
  100: { minReps: 50, minTimeMs: 200 },
  1_000: { minReps: 25, minTimeMs: 200 },
  10_000: { minReps: 15, minTimeMs: 0 },
}
const MERGE_TARGET_MS = 50
const RSS_TARGET_MB = 100
const DAEMON_TYPES = 10
const DAEMON_ENTRIES = 10_000
/** Entries per POST while filling the daemon: each body must stay under its 1 MiB limit. */
const POST_CHUNK = 3_000
const MAX_BODY = 1024 * 1024
/** Daemon runs for the RSS figures (each: start, idle reading, fill, filled reading). */
const DAEMON_RUNS = 3
/** Wall-clock base of the synthetic writes, so clocks (and thus sizes) are the same every run. */
const T0 = 1_732_500_000_000
const MB = 1e6

// ---------------------------------------------------------------- data

function values(n: number, seed: number, prefix = 'host-'): Array<[string, Json]> {
  const rand = prng(seed)
  return Array.from({ length: n }, (_, i) => [`${prefix}${i}`, hostRecord(i, rand) as Json] as [string, Json])
}

/** A table as a neighbour's POST delivers it: parsed and validated from text, so no object is shared with ours. */
const received = (table: Table): Table => parseTable(JSON.parse(serializeTable(table)))

/** The same entries without malla's `clock`: what a LibreMesh router stores, ordered by TTL alone. */
const withoutClock = (table: Table): Table =>
  new Map([...table].map(([k, e]) => [k, { data: e.data, author: e.author, bleachTTL: e.bleachTTL } satisfies Entry]))

/** One side of the merge workloads: malla's entries (with clock), or the same without clock (LibreMesh's rule). */
interface Side {
  /** Our table: written by router-a, bleached once (TTL 29). */
  readonly local: Table
  /** A neighbour's full table where every key holds a newer write (TTL 30, later clock, other data) by the same author, router-a. */
  readonly newerSameAuthor: Table
  readonly newerSameAuthorText: string
  /** The same, but every newer write is by another author, router-b. */
  readonly newerOtherAuthor: Table
  /** A neighbour's full table equal to ours (already in sync), parsed from text. */
  readonly same: Table
}

interface Fixture {
  readonly n: number
  readonly malla: Side
  /** The same entries without clocks: LibreMesh's rule decides by TTL alone (30 beats 29, 29 ties 29). */
  readonly plain: Side
}

function side(local: Table, newerSameAuthor: Table, newerOtherAuthor: Table, strip: boolean): Side {
  const prep = (t: Table) => received(strip ? withoutClock(t) : t)
  const sameAuthor = prep(newerSameAuthor)
  return {
    local: prep(local),
    newerSameAuthor: sameAuthor,
    newerSameAuthorText: serializeTable(sameAuthor),
    newerOtherAuthor: prep(newerOtherAuthor),
    same: prep(local),
  }
}

function fixture(n: number): Fixture {
  const local: Table = new Map()
  insertEntries(local, values(n, 1), 30, { author: 'router-a', clock: new WriteClock(() => T0) })
  bleachTable(local)
  const later = () => T0 + 60_000
  const sameAuthor: Table = new Map()
  insertEntries(sameAuthor, values(n, 2), 30, { author: 'router-a', clock: new WriteClock(later) })
  const otherAuthor: Table = new Map()
  insertEntries(otherAuthor, values(n, 2), 30, { author: 'router-b', clock: new WriteClock(later) })
  return { n, malla: side(local, sameAuthor, otherAuthor, false), plain: side(local, sameAuthor, otherAuthor, true) }
}

/** Checks that a workload does what its name says before it is timed. */
function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`bench/merge: sanity check failed: ${what}`)
}

// ---------------------------------------------------------------- merge

async function mergeRows(ctx: BenchContext, rows: BenchRow[], bytesRows: BenchRow[], notes: string[]): Promise<void> {
  for (const n of SIZES) {
    ctx.progress(`merge: building ${n.toLocaleString('en-US')}-entry tables`)
    const f = fixture(n)

    // What each workload does, checked once untimed, for both rules.
    for (const [rule, s] of [['malla', f.malla], ['LibreMesh rule', f.plain]] as const) {
      const clock = rule === 'malla' ? new WriteClock() : undefined
      check(mergeTable(new Map(s.local), s.newerSameAuthor, clock).keys.length === n, `${rule}: every key replaced, same author (n=${n})`)
      check(mergeTable(new Map(s.local), s.newerOtherAuthor, clock).keys.length === n, `${rule}: every key replaced, other author (n=${n})`)
      check(!mergeTable(new Map(s.local), s.same, clock).touched, `${rule}: in-sync table changes nothing (n=${n})`)
    }

    type S = { table: Table; clock: WriteClock }
    const copy = (t: Table) => (): S => ({ table: new Map(t), clock: new WriteClock() })
    // Malla merges observe clocks as the Replica does; LibreMesh's rule has no clock to observe.
    const mergeCases = (prefix: string, s: Side, withClock: boolean): Array<Case<S>> => [
      { name: `${prefix} same author`, setup: copy(s.local), run: (st) => mergeTable(st.table, s.newerSameAuthor, withClock ? st.clock : undefined) },
      { name: `${prefix} other author`, setup: copy(s.local), run: (st) => mergeTable(st.table, s.newerOtherAuthor, withClock ? st.clock : undefined) },
      { name: `${prefix} in sync`, setup: copy(s.local), run: (st) => mergeTable(st.table, s.same, withClock ? st.clock : undefined) },
      {
        // What the endpoint does in memory with one POST: parse, validate, merge, serialise the answer.
        name: `${prefix} request`,
        setup: copy(s.local),
        run: (st) => {
          mergeTable(st.table, parseTable(JSON.parse(s.newerSameAuthorText), 'body'), withClock ? st.clock : undefined)
          return serializeTable(st.table)
        },
      },
    ]
    const text = f.malla.newerSameAuthorText
    const cases: Array<Case<any>> = [
      ...mergeCases('malla', f.malla, true),
      ...mergeCases('plain', f.plain, false),
      { name: 'floor', run: () => JSON.stringify(JSON.parse(text)) },
      { name: 'parse+validate', run: () => parseTable(JSON.parse(text), 'body') },
    ]
    ctx.progress(`merge: timing ${n.toLocaleString('en-US')} entries (${cases.length} interleaved cases)`)
    const t = await compareCases(cases, { warmup: 3, ...MERGE_REPS[n] })
    const get = (name: string) => t.get(name) as Summary
    const target = n === 10_000 ? MERGE_TARGET_MS : undefined
    const libremesh = (name: string) => ({ name: 'LibreMesh rule', value: get(name) })
    const floor = { name: 'JSON.parse+stringify', value: get('floor') }
    const section = 'merge (ms)'
    rows.push(
      row({ section, name: 'mergeTable, every key replaced, same author', n, unit: 'ms', value: get('malla same author'), baseline: libremesh('plain same author'), target }),
      row({ section, name: 'mergeTable, every key replaced, other author', n, unit: 'ms', value: get('malla other author'), baseline: libremesh('plain other author'), target }),
      row({ section, name: 'mergeTable, in sync (none replaced)', n, unit: 'ms', value: get('malla in sync'), baseline: libremesh('plain in sync'), target }),
      row({ section, name: 'LibreMesh rule, every key replaced, same author', n, unit: 'ms', value: get('plain same author'), baseline: floor }),
      row({ section, name: 'LibreMesh rule, every key replaced, other author', n, unit: 'ms', value: get('plain other author'), baseline: floor }),
      row({ section, name: 'LibreMesh rule, in sync', n, unit: 'ms', value: get('plain in sync'), baseline: floor }),
      row({ section, name: 'JSON.parse + parseTable (validate)', n, unit: 'ms', value: get('parse+validate'), baseline: floor }),
      row({ section, name: 'JSON.parse + JSON.stringify (floor)', n, unit: 'ms', value: get('floor') }),
      row({ section, name: 'whole request: parse+validate+merge+serialize', n, unit: 'ms', value: get('malla request'), baseline: libremesh('plain request') }),
    )
    if (n === 10_000) {
      const m = (name: string) => get(name).median
      const x = (name: string) => `${formatNumber(m(name))} ms (${formatNumber(m(name) / m('floor'))}× the JSON floor)`
      notes.push(
        `10,000 entries: mergeTable takes ${x('malla same author')} when every key is replaced by its author's newer write, ${x('malla other author')} when by another author, ` +
          `and ${x('malla in sync')} when already in sync. A whole request in memory (no disk) takes ${formatNumber(m('malla request'))} ms; ` +
          `for reference only (not measured here, other code and hardware), the seed notes report 300–430 ms for LibreMesh's Lua reqsync of 10,000 entries.`,
      )
    }

    // Bytes of one full-table sync: the neighbour's table POSTed, our merged table answered (as the daemon does, with a newline).
    const syncBytes = (s: Side, clock: WriteClock | undefined) => {
      const merged = new Map(s.local)
      mergeTable(merged, s.newerSameAuthor, clock)
      const request = Buffer.from(s.newerSameAuthorText)
      const reply = Buffer.from(serializeTable(merged) + '\n')
      return { request: request.byteLength, both: request.byteLength + reply.byteLength, gzip: gzipSync(request).byteLength + gzipSync(reply).byteLength }
    }
    const mb = syncBytes(f.malla, new WriteClock())
    const lb = syncBytes(f.plain, undefined)
    const lm = (value: number) => ({ name: 'LibreMesh table (no clock)', value })
    const bs = 'full-table sync (bytes)'
    bytesRows.push(
      row({ section: bs, name: 'request (the whole table)', n, unit: 'bytes', value: mb.request, baseline: lm(lb.request) }),
      row({ section: bs, name: 'request + reply', n, unit: 'bytes', value: mb.both, baseline: lm(lb.both) }),
      row({ section: bs, name: 'request + reply, gzip (?gzip)', n, unit: 'bytes', value: mb.gzip, baseline: lm(lb.gzip) }),
    )
    if (n === 10_000) {
      const dataBytes = median([...f.malla.local.values()].map((e) => JSON.stringify(e.data).length))
      notes.push(
        `Entry data is ${dataBytes} bytes of JSON (median); a whole entry on the wire is ~${Math.round(mb.request / n)} bytes with malla's clock, ` +
          `~${Math.round(lb.request / n)} without. A 10,000-entry table (${formatNumber(mb.request / 2 ** 20)} MiB) is over the daemon's default 1 MiB --max-body, ` +
          `so it cannot be synced through the LibreMesh endpoint unless that limit is raised.`,
      )
    }
  }
}

// ---------------------------------------------------------------- insert

async function insertRows(ctx: BenchContext, cleanup: Cleanup, rows: BenchRow[]): Promise<void> {
  const N = 10_000
  const vals = values(N, 3)
  const filled: Table = new Map()
  insertEntries(filled, vals, 30, { author: 'router-a', clock: new WriteClock() })
  const author = 'router-a'
  const rate = (s: Summary, n: number) => mapSummary(s, (ms) => (n / ms) * 1000)

  ctx.progress('insert: pure core')
  type S = { table: Table; clock: WriteClock }
  const core = await compareCases(
    [
      { name: 'malla new', setup: () => ({ table: new Map(), clock: new WriteClock() }), run: (s: S) => insertEntries(s.table, vals, 30, { author, clock: s.clock }) },
      { name: 'plain new', setup: () => ({ table: new Map(), clock: new WriteClock() }), run: (s: S) => libremeshInsert(s.table, vals, 30, author) },
      { name: 'malla again', setup: () => ({ table: new Map(filled), clock: new WriteClock() }), run: (s: S) => insertEntries(s.table, vals, 30, { author, clock: s.clock }) },
      { name: 'plain again', setup: () => ({ table: new Map(filled), clock: new WriteClock() }), run: (s: S) => libremeshInsert(s.table, vals, 30, author) },
    ],
    { warmup: 3, minReps: 15 },
  )
  const c = (name: string) => rate(core.get(name) as Summary, N)
  const sec = 'insert rate (entries/s)'
  const plainInsert = (name: string) => ({ name: 'LibreMesh insert (Map.set, no clock)', value: c(name) })
  rows.push(
    row({ section: sec, name: 'insertEntries, new keys (pure core)', n: N, unit: 'entries/s', better: 'higher', value: c('malla new'), baseline: plainInsert('plain new') }),
    row({ section: sec, name: 'insertEntries, republish same data (pure core)', n: N, unit: 'entries/s', better: 'higher', value: c('malla again'), baseline: plainInsert('plain again') }),
  )

  // Through a Replica: FileStore (durable: fsync'd temp file, rename, fsync'd directory, lock) against MemoryStore.
  const root = await cleanup.tempDir('malla-bench-merge-')
  let dirs = 0
  const type = 'bench' as TypeName
  const fileReplica = () => new Replica({ store: new FileStore(`${root}/r${dirs++}`), author })
  const memReplica = () => new Replica({ store: new MemoryStore(), author })

  ctx.progress(`insert: ${N.toLocaleString('en-US')} concurrent inserts through a Replica (group commit)`)
  const concurrent = (r: Replica) => Promise.all(vals.map(([k, d]) => r.insert(type, [[k, d]])))
  {
    const probe = fileReplica()
    await concurrent(probe)
    check((await probe.get(type)).table.size === N, 'concurrent inserts all landed on disk')
  }
  const group = await compareCases(
    [
      { name: 'file', setup: fileReplica, run: concurrent },
      { name: 'memory', setup: memReplica, run: concurrent },
    ],
    { warmup: 1, minReps: 5 },
  )
  rows.push(
    row({
      section: sec,
      name: `Replica+FileStore, ${N.toLocaleString('en-US')} concurrent inserts (group commit)`,
      n: N,
      unit: 'entries/s',
      better: 'higher',
      value: rate(group.get('file') as Summary, N),
      baseline: { name: 'same, MemoryStore', value: rate(group.get('memory') as Summary, N) },
    }),
  )

  // One at a time, each awaited: one lock + one durable save per insert.
  const latencyRows: BenchRow[] = []
  const sequential = async (label: string, n: number, preload: number, reps: number) => {
    ctx.progress(`insert: ${n} one-at-a-time inserts into a table of ${preload.toLocaleString('en-US')} (${label})`)
    const latencies = { file: [] as number[], memory: [] as number[] }
    const seq = (kind: 'file' | 'memory') => async (r: Replica) => {
      for (let i = 0; i < n; i++) {
        const start = nowNs()
        await r.insert(type, [[`one-${i}`, vals[i % N]?.[1] ?? null]])
        latencies[kind].push(msSince(start))
      }
    }
    const setup = (make: () => Replica) => async () => {
      const r = make()
      if (preload > 0) await r.insert(type, vals.slice(0, preload))
      return r
    }
    const t = await compareCases(
      [
        { name: 'file', setup: setup(fileReplica), run: seq('file') },
        { name: 'memory', setup: setup(memReplica), run: seq('memory') },
      ],
      { warmup: 0, minReps: reps },
    )
    rows.push(
      row({
        section: sec,
        name: `Replica+FileStore, one-at-a-time awaited (${label})`,
        n,
        unit: 'entries/s',
        better: 'higher',
        value: rate(t.get('file') as Summary, n),
        baseline: { name: 'same, MemoryStore', value: rate(t.get('memory') as Summary, n) },
      }),
    )
    latencyRows.push(
      row({
        section: 'per-commit latency (ms)',
        name: `Replica+FileStore, insert of 1 key, awaited (${label})`,
        ...(preload > 0 ? { n: preload } : {}),
        unit: 'ms',
        value: summarize(latencies.file),
        baseline: { name: 'same, MemoryStore', value: summarize(latencies.memory) },
      }),
    )
  }
  await sequential('empty table', 200, 0, 3)
  await sequential('10,000-entry table', 30, N, 3)
  rows.push(...latencyRows)
}

/** LibreMesh's `_insert`: every key becomes `{data, author, bleachTTL}`, nothing else is checked. */
function libremeshInsert(table: Table, vals: ReadonlyArray<readonly [string, Json]>, ttl: number, author: string): number {
  for (const [key, data] of vals) table.set(key, { data, author, bleachTTL: ttl })
  return table.size
}

// ---------------------------------------------------------------- daemon RSS

interface DaemonRun {
  readonly idle: number
  readonly filled: number
  readonly settled: number
  readonly peak: number
  readonly fillMs: number
  readonly postMs: number[]
}

/** Bodies for one type: its 10,000 entries in POSTs of at most POST_CHUNK entries, each under the body limit. */
function typeBodies(t: number): string[] {
  const table: Table = new Map()
  insertEntries(table, values(DAEMON_ENTRIES, 100 + t), 30, { author: `router-${t}`, clock: new WriteClock(() => T0) })
  const entries = [...table]
  const bodies: string[] = []
  for (let i = 0; i < entries.length; i += POST_CHUNK) {
    const body = serializeTable(new Map(entries.slice(i, i + POST_CHUNK)))
    check(Buffer.byteLength(body) < MAX_BODY, `POST body under 1 MiB (${Buffer.byteLength(body)} bytes)`)
    bodies.push(body)
  }
  return bodies
}

async function daemonRun(ctx: BenchContext, bodies: string[][], run: number, nodeOptions: string | undefined): Promise<DaemonRun> {
  const cleanup = new Cleanup()
  try {
    const dir = await cleanup.tempDir('malla-bench-daemon-')
    const env = nodeOptions === undefined ? process.env : { ...process.env, NODE_OPTIONS: nodeOptions }
    // --memory lean: what a router gets (the default below 1 GiB of RAM), which the RSS target is for.
    const daemon = await startDaemon(['--data', dir, '--name', 'bench-daemon', '--bleach-interval', '3600', '--memory', 'lean'], { env })
    cleanup.add(`stop daemon ${daemon.pid}`, () => daemon.stop())
    ctx.progress(`daemon run ${run}: pid ${daemon.pid} listening at ${daemon.url}; idle reading`)
    await sleep(1500)
    const idle = median(await sampleRss(daemon.pid, 5, 200))

    ctx.progress(`daemon run ${run}: filling ${DAEMON_TYPES} types × ${DAEMON_ENTRIES.toLocaleString('en-US')} entries`)
    const postMs: number[] = []
    const start = nowNs()
    for (let t = 0; t < DAEMON_TYPES; t++) {
      for (const body of bodies[t] as string[]) {
        const res = await postText(`${daemon.base}/cgi-bin/shared-state/bench-type-${t}`, body)
        if (res.status !== 200) throw new Error(`POST bench-type-${t} answered ${res.status}: ${res.text.slice(0, 300)}`)
        postMs.push(res.ms)
      }
    }
    const fillMs = msSince(start)
    const listing = await fetch(`${daemon.base}/malla/v1/tables`, { signal: AbortSignal.timeout(30_000) })
    const tables = (await listing.json()) as Array<{ type: string; size: number }>
    const held = tables.reduce((sum, t) => sum + t.size, 0)
    check(tables.length === DAEMON_TYPES && held === DAEMON_TYPES * DAEMON_ENTRIES, `daemon holds ${DAEMON_TYPES} × ${DAEMON_ENTRIES} entries (it holds ${tables.length} tables, ${held} entries)`)

    ctx.progress(`daemon run ${run}: filled in ${(fillMs / 1000).toFixed(1)} s; settling`)
    await sleep(3000)
    const filled = median(await sampleRss(daemon.pid, 5, 300))
    const peak = (await procMemory(daemon.pid)).hwm
    // V8's memory reducer shrinks the heap only after the process has been idle for a while (tens of seconds
    // here): keep reading for 40 s, and until three readings 2 s apart agree within 1 MB, for the steady state.
    ctx.progress(`daemon run ${run}: waiting for the steady state`)
    const readings = [filled]
    const started = Date.now()
    for (;;) {
      await sleep(2000)
      readings.push((await procMemory(daemon.pid)).rss)
      const last = readings.slice(-3)
      const stable = last.length === 3 && Math.max(...last) - Math.min(...last) < 1e6
      if ((Date.now() - started > 40_000 && stable) || Date.now() - started > 90_000) break
    }
    const settled = readings[readings.length - 1] as number
    return { idle, filled, settled, peak, fillMs, postMs }
  } finally {
    await cleanup.run()
  }
}

async function daemonRows(ctx: BenchContext, rows: BenchRow[], notes: string[], nodeOptions: string | undefined): Promise<void> {
  ctx.progress('daemon: preparing POST bodies')
  const bodies = Array.from({ length: DAEMON_TYPES }, (_, t) => typeBodies(t))

  // How much of the daemon's memory the data itself needs: the same entries held as parsed tables here, heap delta after GC.
  ctx.progress('daemon: live heap of the same entries, parsed in this process')
  const heapBefore = heapUsedAfterGc()
  const held: Table[] = bodies.map((chunks) => {
    const table: Table = new Map()
    for (const body of chunks) mergeTable(table, parseTable(JSON.parse(body), 'body'))
    return table
  })
  const heapDelta = heapUsedAfterGc() - heapBefore
  const heldText = held.reduce((sum, t) => sum + Buffer.byteLength(serializeTable(t)), 0)
  check(held.reduce((sum, t) => sum + t.size, 0) === DAEMON_TYPES * DAEMON_ENTRIES, 'parsed copy holds every entry')
  // The same tables as the daemon holds them (packed: core/packed-table.ts; with --memory lean, deflated too),
  // made from the parsed ones (which share no string with them). Their columns are typed arrays, outside the
  // JS heap: counted too.
  const withBuffers = () => heapUsedAfterGc() + process.memoryUsage().arrayBuffers
  const packedBefore = withBuffers()
  const packed = held.map((t) => PackedTable.pack(t))
  const packedDelta = withBuffers() - packedBefore
  const deflated = held.map((t) => PackedTable.pack(t, tablePacking('lean').options))
  const deflatedDelta = withBuffers() - packedBefore - packedDelta
  held.length = 0
  check(packed.reduce((sum, t) => sum + t.size, 0) === DAEMON_TYPES * DAEMON_ENTRIES, 'packed copy holds every entry')
  check(deflated.reduce((sum, t) => sum + t.size, 0) === DAEMON_TYPES * DAEMON_ENTRIES, 'deflated copy holds every entry')
  consume([packed, deflated])

  const runs: DaemonRun[] = []
  for (let r = 1; r <= DAEMON_RUNS; r++) runs.push(await daemonRun(ctx, bodies, r, nodeOptions))
  const mb = (xs: number[]) => summarize(xs.map((x) => x / MB))
  const idle = mb(runs.map((r) => r.idle))
  const section = 'daemon RSS, --memory lean (a router) (MB = 10^6 B)'
  if (nodeOptions !== undefined) notes.push(`The measured daemons ran with NODE_OPTIONS=${JSON.stringify(nodeOptions)} (--daemon-node-options).`)
  const total = DAEMON_TYPES * DAEMON_ENTRIES
  rows.push(
    row({ section, name: 'idle daemon, no data (VmRSS)', unit: 'MB', value: idle }),
    row({ section, name: `holding ${DAEMON_TYPES} types × ${DAEMON_ENTRIES.toLocaleString('en-US')} entries, 3 s after filling (VmRSS)`, n: total, unit: 'MB', value: mb(runs.map((r) => r.filled)), baseline: { name: 'idle daemon', value: idle } }),
    row({ section, name: `holding ${DAEMON_TYPES} types × ${DAEMON_ENTRIES.toLocaleString('en-US')} entries, steady state (VmRSS)`, n: total, unit: 'MB', value: mb(runs.map((r) => r.settled)), baseline: { name: 'idle daemon', value: idle }, target: RSS_TARGET_MB }),
    row({ section, name: 'peak while filling (VmHWM)', n: total, unit: 'MB', value: mb(runs.map((r) => r.peak)), baseline: { name: 'idle daemon', value: idle } }),
    row({ section, name: 'live JS heap of the same entries, parsed (in-process, after GC)', n: total, unit: 'MB', value: heapDelta / MB, baseline: { name: 'their JSON text', value: heldText / MB } }),
    row({ section, name: 'live JS heap and buffers of the same entries, packed as the daemon holds them (in-process, after GC)', n: total, unit: 'MB', value: packedDelta / MB, baseline: { name: 'their JSON text', value: heldText / MB } }),
    row({ section, name: 'same, packed and deflated, as the daemon holds them with --memory lean', n: total, unit: 'MB', value: deflatedDelta / MB, baseline: { name: 'their JSON text', value: heldText / MB } }),
    row({ section: 'daemon fill over HTTP, --memory lean', name: `POST ≤${POST_CHUNK.toLocaleString('en-US')} entries to /cgi-bin/shared-state/<type>`, unit: 'ms', value: summarize(runs.flatMap((r) => r.postMs)) }),
    row({ section: 'daemon fill over HTTP, --memory lean', name: 'fill rate, all types (sequential POSTs)', n: total, unit: 'entries/s', better: 'higher', value: summarize(runs.map((r) => (total / r.fillMs) * 1000)) }),
  )
  notes.push(
    `Daemon RSS: ${DAEMON_RUNS} fresh daemons (\`malla peer --memory lean\`), each read 5 times after settling (median per daemon, then median of daemons); idle reading taken from the same daemon before it got data. ` +
      `Fill: ${DAEMON_TYPES} types × ${Math.ceil(DAEMON_ENTRIES / POST_CHUNK)} POSTs each; each answer is the whole merged table (up to ${DAEMON_ENTRIES.toLocaleString('en-US')} entries).`,
  )
}

// ---------------------------------------------------------------- one large table (issue 13: a real router)

const FOOTPRINT_ENTRIES = 100_000
const FOOTPRINT_SMALL = 1_000
const FOOTPRINT_INSERTS = 21
const INSERT_RATIO_TARGET = 1.5

/**
 * One daemon, one table filled to 100,000 entries of ~200 bytes through the operator API (what `malla insert`
 * uses), in inserts of 2,000 keys: idle RSS, RSS after the fill, the peak (VmHWM, which covers the whole-table
 * save of the quiet table), and single-key inserts through the API at 1,000 entries and at 100,000.
 *
 * Twice: with `--memory lean`, what a router gets (the default below 1 GiB of RAM), which the targets are for;
 * then with `--memory fast`, what this machine gets by default, for comparison.
 */
async function footprintRows(ctx: BenchContext, rows: BenchRow[], notes: string[], nodeOptions: string | undefined): Promise<void> {
  const env = nodeOptions === undefined ? process.env : { ...process.env, NODE_OPTIONS: nodeOptions }
  const runs = new Map<MemoryMode, FootprintRun>()
  for (const memory of ['lean', 'fast'] as const) {
    runs.set(memory, await footprintRun({ entries: FOOTPRINT_ENTRIES, small: FOOTPRINT_SMALL, chunk: 2_000, inserts: FOOTPRINT_INSERTS, env, args: ['--memory', memory], progress: (m) => ctx.progress(`--memory ${memory}: ${m}`) }))
  }
  for (const [memory, r] of runs) {
    const lean = memory === 'lean'
    const section = `one table of 100,000 entries, --memory ${memory}${lean ? ' (a router)' : ' (this machine)'} (MB = 10^6 B)`
    const idle = r.idle / MB
    const target = lean ? RSS_TARGET_MB : undefined
    rows.push(
      row({ section, name: 'idle daemon (VmRSS)', unit: 'MB', value: idle }),
      row({ section, name: 'after filling, through the API (VmRSS)', n: FOOTPRINT_ENTRIES, unit: 'MB', value: r.filled / MB, baseline: { name: 'idle daemon', value: idle }, target }),
      row({ section, name: 'after inserts and a whole-table save (VmRSS)', n: FOOTPRINT_ENTRIES, unit: 'MB', value: r.settled / MB, baseline: { name: 'idle daemon', value: idle }, target }),
      row({ section, name: 'peak over fill, inserts and whole-table save (VmHWM)', n: FOOTPRINT_ENTRIES, unit: 'MB', value: r.peak / MB, baseline: { name: 'idle daemon', value: idle }, target }),
      row({ section, name: 'fill rate, inserts of 2,000 keys (sequential)', n: FOOTPRINT_ENTRIES, unit: 'entries/s', better: 'higher', value: (FOOTPRINT_ENTRIES / r.fillMs) * 1000 }),
    )
    const small = summarize(r.insertSmallMs)
    const large = summarize(r.insertLargeMs)
    const isection = `insert of 1 key through the API, --memory ${memory} (ms)`
    rows.push(
      row({ section: isection, name: `POST /malla/v1/tables/<type>/insert, table of ${FOOTPRINT_ENTRIES.toLocaleString('en-US')}`, n: FOOTPRINT_ENTRIES, unit: 'ms', value: large, baseline: { name: `same, table of ${FOOTPRINT_SMALL.toLocaleString('en-US')}`, value: small } }),
      row({ section: isection, name: `ratio ${FOOTPRINT_ENTRIES.toLocaleString('en-US')} / ${FOOTPRINT_SMALL.toLocaleString('en-US')} entries (medians)`, unit: '×', value: large.median / small.median, target: INSERT_RATIO_TARGET }),
    )
  }
  const tuning = process.env.MALLA_HEAP_TUNING === '0' ? ' V8 flags: none, MALLA_HEAP_TUNING=0.' : ` V8 flags the daemon sets on itself: lean ${DAEMON_V8_FLAGS.lean.join(' ')}; fast ${DAEMON_V8_FLAGS.fast.join(' ')}.`
  notes.push(
    `One table of ${FOOTPRINT_ENTRIES.toLocaleString('en-US')}: a fresh daemon per mode (\`malla peer --memory MODE\` from dist/${nodeOptions === undefined ? ', no Node flags' : `, NODE_OPTIONS=${JSON.stringify(nodeOptions)}`}), ` +
      `filled by inserts of 2,000 keys through the API; ${FOOTPRINT_INSERTS} single-key inserts, each awaited, timed at ${FOOTPRINT_SMALL.toLocaleString('en-US')} entries and again at ${FOOTPRINT_ENTRIES.toLocaleString('en-US')}. ` +
      'The peak is VmHWM read at the end, after the table was quiet long enough to be saved whole (compaction of its journal). ' +
      `The targets are for --memory lean, the default on a machine with less than ${LEAN_BELOW_BYTES / 1024 ** 3} GiB of RAM (every router); this machine has more, so its default is fast.${tuning}`,
  )
}

// ---------------------------------------------------------------- entry point

/** Options after the name: `--daemon-node-options=FLAGS` starts the measured daemons with NODE_OPTIONS=FLAGS (V8 heap flags, say). */
function parseArgs(args: readonly string[]): { nodeOptions: string | undefined } {
  let nodeOptions: string | undefined
  for (const a of args) {
    const m = /^--daemon-node-options=(.*)$/s.exec(a)
    if (m) nodeOptions = m[1]
    else throw new Error(`bench merge: unknown argument ${JSON.stringify(a)} (known: --daemon-node-options=FLAGS)`)
  }
  return { nodeOptions }
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const { nodeOptions } = parseArgs(ctx.args)
  const cleanup = new Cleanup()
  const mergeTableRows: BenchRow[] = []
  const bytesRows: BenchRow[] = []
  const insert: BenchRow[] = []
  const daemon: BenchRow[] = []
  const footprint: BenchRow[] = []
  const notes: string[] = [
    'Times are medians over repetitions (p10..p90 shown); the cases of one table size run interleaved, so machine drift hits them alike.',
    "Baselines: 'LibreMesh rule' is the same mergeTable on the same data without malla's clock field, so remoteWins falls back to TTL alone (LibreMesh's merge); " +
      "'JSON.parse+stringify' is a JSON round trip of the same table text, a floor for any full-table sync. ratio = median / baseline median.",
    'Workload: our table was written by router-a and bleached once (TTL 29). "every key replaced" merges a neighbour\'s full table where each key holds a newer write ' +
      '(TTL 30, later clock, other data), either by the same author (router-a republished new data, relayed by the neighbour: the usual case) or by another (router-b); ' +
      '"in sync" merges an identical copy (TTL 29). Remote tables are parsed from text, like a POST body, so no object is shared with ours.',
    "Both rules run the same mergeTable, so both pay its change detection (isSubstantial: author, then data equality) for every replaced key; the ratio isolates the order (remoteWins).",
  ]
  try {
    await mergeRows(ctx, mergeTableRows, bytesRows, notes)
    await insertRows(ctx, cleanup, insert)
    await daemonRows(ctx, daemon, notes, nodeOptions)
    await footprintRows(ctx, footprint, notes, nodeOptions)
  } finally {
    await cleanup.run()
  }
  return {
    title: "malla's merge rule vs LibreMesh's, insert rate, full-table sync bytes, daemon memory",
    rows: [...mergeTableRows, ...insert, ...bytesRows, ...daemon, ...footprint],
    notes,
    params: { sizes: SIZES, dataBytes: '~200 bytes of JSON per entry', mergeReps: MERGE_REPS, daemonTypes: DAEMON_TYPES, daemonEntriesPerType: DAEMON_ENTRIES, postChunk: POST_CHUNK, daemonRuns: DAEMON_RUNS, daemonNodeOptions: nodeOptions ?? null, targets: { mergeMs10k: MERGE_TARGET_MS, daemonRssMB: RSS_TARGET_MB, insertRatio100kTo1k: INSERT_RATIO_TARGET }, footprintEntries: FOOTPRINT_ENTRIES },
  }
}
