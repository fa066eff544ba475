/**
 * How fast a change to a room's table reaches peers behind routers H hops away: (b) over the overlay (the
 * peers' own connections, `room.tables` with the default `overlay: true`) against (a) the routers' HTTP push
 * path alone (`overlay: false`: each peer sends its entries to its router, which pushes them on hop by hop, and
 * the far peer hears them on its router's change feed), measured in the same run on the same chain.
 *
 * Set-up: a chain of 7 routers (malla daemons with their defaults, `--discover`, each in its own network
 * namespace: bench/lib/netns.ts) and four Node peers (werift, test/e2e/fixtures/node-peer.ts) in one room:
 * A behind n0, and B behind n1, n3 and n6. A writes one entry; each figure is from just before A's insert to
 * the moment the B peer's replica announces it (both wall clocks of this one machine, sub-millisecond). The
 * two modes use fresh peers and rooms and take turns in blocks, so a slower stretch of this shared machine
 * falls on both. Also: the bytes the overlay's exchanges carried per change per connection, and the most
 * connections one peer held; the writes of a stable room; and a directed connection (`room.connect`) against
 * one signaled through the routers (see `directed`).
 *
 * `npm run bench -- overlay [--quick]`; needs root (namespaces) and a build.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Cleanup } from './lib/cleanup.js'
import { PeerProcess } from './lib/peer-process.js'
import { sleep } from './lib/daemon.js'
import { formatNumber } from './lib/format.js'
import { netnsUnavailable, startChain, type NetnsChain } from './lib/netns.js'
import { row, type BenchContext, type BenchResult, type BenchRow } from './lib/result.js'
import { summarize } from './lib/stats.js'

const PEER_SCRIPT = fileURLToPath(new URL('../test/e2e/fixtures/node-peer.ts', import.meta.url))
const CHAIN_HOPS = 6
const FAR = [1, 3, 6] as const
const TARGET_MS = 50
const BYTES_TARGET = 1024
const BLOCK = 5
const REP_TIMEOUT_MS = 20_000
type Mode = 'routers' | 'overlay'

async function startPeer(cleanup: Cleanup, ns: string, url: string, room: string, mode: Mode, label: string, size: { target: number; max?: number } = { target: 3 }): Promise<PeerProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', PEER_SCRIPT, url, room, String(size.target), ...(size.max !== undefined ? [String(size.max)] : [])], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, MALLA_OVERLAY: mode === 'overlay' ? '1' : '0' },
  })
  const peer = new PeerProcess(child, label)
  cleanup.add(`stop peer ${label}`, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const ready = await peer.waitFor((l) => l.event === 'ready', 30_000, 'ready')
  peer.id = ready.id as string
  return peer
}

interface ModeRun {
  /** Per far hop count, the milliseconds of each change. */
  readonly ms: Map<number, number[]>
  bytes: number
  changes: number
  /** Arrivals that came over a connection rather than from the peer's router. */
  overOverlay: number
  links: number
  maxConnections: number
}

interface Lab {
  readonly net: NetnsChain
  readonly urls: readonly string[]
}

async function setUp(ctx: BenchContext, cleanup: Cleanup): Promise<Lab> {
  const { net, urls } = await startChain(cleanup, CHAIN_HOPS, 'overlay')
  ctx.progress(`${net.routers.length} routers in a chain (malla-${net.runId}-n0..n${CHAIN_HOPS}), every one has found its neighbours`)
  return { net, urls }
}

/** One block: fresh peers in a fresh room, `reps` changes written by A, each timed to every B. */
async function block(ctx: BenchContext, lab: Lab, mode: Mode, reps: number, into: ModeRun, index: number): Promise<void> {
  const cleanup = new Cleanup()
  try {
    const room = `bench-${mode}-${index}-${Date.now().toString(36)}`
    const at = [0, ...FAR]
    const peers = await Promise.all(at.map((h, i) => startPeer(cleanup, (lab.net.routers[h] as NetnsChain['routers'][number]).ns, lab.urls[h] as string, room, mode, i === 0 ? 'A@n0' : `B@n${h}`)))
    const [a, ...far] = peers as [PeerProcess, ...PeerProcess[]]
    // Connected: each peer to at least one other; for the overlay, each one syncing on at least one connection.
    const deadline = Date.now() + 60_000
    for (;;) {
      const states = await Promise.all(peers.map((p) => Promise.all([p.ask<{ connected: number }>('stats', 'stats'), p.ask<{ linked: string[] }>('overlay', 'overlay')])))
      if (states.every(([s, o]) => s.connected >= 1 && (mode === 'routers' || o.linked.length >= 1))) break
      if (Date.now() > deadline) throw new Error(`${mode}: peers not connected within 60 s: ${JSON.stringify(states)}`)
      await sleep(250)
    }
    // Let the mesh reach its target, so that connections opening do not fall among the samples.
    await sleep(2000)
    const before = await Promise.all(peers.map((p) => p.ask<{ traffic: { bytesSent: number; bytesReceived: number }; linked: string[] }>('overlay', 'overlay')))
    for (let r = 0; r < reps; r++) {
      const key = `k${index}x${r}`
      const marks = far.map((p) => p.lines.length)
      a.send(`write ${key} ${'x'.repeat(100)}`)
      const wrote = await a.waitFor((l) => l.event === 'wrote' && l.key === key, REP_TIMEOUT_MS, `the write of ${key}`)
      const got = await Promise.all(far.map((p, i) => p.waitFor((l) => l.event === 'entry' && l.key === key, REP_TIMEOUT_MS, `${key}`, marks[i])))
      got.forEach((line, i) => {
        into.ms.get(FAR[i] as number)?.push((line.at as number) - (wrote.at as number))
        if (String(line.via).startsWith('peer ')) into.overOverlay++
      })
      await sleep(100)
    }
    const after = await Promise.all(peers.map((p) => p.ask<{ traffic: { bytesSent: number; bytesReceived: number }; linked: string[] }>('overlay', 'overlay')))
    const stats = await Promise.all(peers.map((p) => p.ask<{ connected: number }>('stats', 'stats')))
    into.bytes += after.reduce((n, o, i) => n + o.traffic.bytesSent + o.traffic.bytesReceived - ((before[i]?.traffic.bytesSent ?? 0) + (before[i]?.traffic.bytesReceived ?? 0)), 0)
    into.changes += reps
    into.links = Math.max(into.links, after.reduce((n, o) => n + o.linked.length, 0) / 2)
    into.maxConnections = Math.max(into.maxConnections, ...stats.map((s) => s.connected))
    ctx.progress(`${mode} block ${index}: ${reps} changes, ${into.overOverlay} arrivals over the overlay so far; medians ${FAR.map((h) => `H=${h} ${formatNumber(summarize(into.ms.get(h) as number[]).median)} ms`).join(', ')}`)
  } finally {
    await cleanup.run()
  }
}

/**
 * A stable room: four peers, connected, nobody writing. Counts every entry each writes (to its replica, and so
 * to its router: offer renewals, marks, answers) over `seconds`, after the mesh has settled.
 */
async function quietRoom(ctx: BenchContext, lab: Lab, seconds: number): Promise<{ perPeerPerMinute: number; peers: number }> {
  const cleanup = new Cleanup()
  try {
    const room = `bench-quiet-${Date.now().toString(36)}`
    const peers = await Promise.all([0, ...FAR].map((h, i) => startPeer(cleanup, (lab.net.routers[h] as NetnsChain['routers'][number]).ns, lab.urls[h] as string, room, 'overlay', i === 0 ? 'A@n0' : `B@n${h}`)))
    const deadline = Date.now() + 60_000
    while (!(await Promise.all(peers.map((p) => p.ask<{ connected: number }>('stats', 'stats')))).every((s) => s.connected >= 2)) {
      if (Date.now() > deadline) throw new Error('quiet room: peers not connected within 60 s')
      await sleep(250)
    }
    await sleep(5000)
    const writes = async () => (await Promise.all(peers.map((p) => p.ask<{ writes: number }>('overlay', 'overlay')))).map((o) => o.writes)
    const before = await writes()
    ctx.progress(`quiet room: ${peers.length} peers connected; counting their writes for ${seconds} s`)
    await sleep(seconds * 1000)
    const after = await writes()
    const total = after.reduce((n, w, i) => n + w - (before[i] as number), 0)
    return { perPeerPerMinute: total / peers.length / (seconds / 60), peers: peers.length }
  } finally {
    await cleanup.run()
  }
}

/** Until `ok` holds for the answers of `ask` on every peer, polling every 100 ms, within `ms`. */
async function until(peers: readonly PeerProcess[], ok: (stats: Array<{ connected: number; openOffers: number; peers: string[]; linked: string[] }>) => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const states = await Promise.all(
      peers.map(async (p) => {
        const [s, o] = await Promise.all([p.ask<{ connected: number; openOffers: number; peers: string[] }>('stats', 'stats'), p.ask<{ linked: string[] }>('overlay', 'overlay')])
        return { ...s, linked: o.linked }
      }),
    )
    if (ok(states)) return
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms: ${JSON.stringify(states)}`)
    await sleep(100)
  }
}

/** A peer leaves (withdraws, closes, exits), within 10 s. */
async function leave(p: PeerProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => (p.child.exitCode !== null ? resolve() : p.child.once('exit', () => resolve())))
  p.send('leave')
  await Promise.race([exited, sleep(10_000).then(() => p.child.kill('SIGKILL'))])
}

/**
 * Opening a connection between a peer behind n0 and one behind n6 (6 router hops), two ways, `reps` times each:
 * - directed: A (behind n0, max 1) is connected to M (behind n3) only, and so is a fresh B (behind n6, max 1);
 *   A calls `room.connect(B)`: its offer and B's answer travel over the connections A–M–B. From the call to the
 *   connection open, at A.
 * - through the routers (the baseline): A' (behind n0, alone in another room) keeps its offers in the routers'
 *   tables; a fresh C (behind n6, max 1) joins: it reads them from its router, answers, and its answer reaches
 *   A' through the routers. From C's `ready` (its join done: it holds the tables and its mesh has started) to
 *   its first connection open, at C. C's mesh starts a few ms before `ready`, so this favours the baseline.
 */
async function directed(ctx: BenchContext, lab: Lab, reps: number): Promise<{ directed: number[]; routers: number[] }> {
  const cleanup = new Cleanup()
  const out = { directed: [] as number[], routers: [] as number[] }
  const ns = (h: number) => (lab.net.routers[h] as NetnsChain['routers'][number]).ns
  try {
    const stamp = Date.now().toString(36)
    const room = `bench-directed-${stamp}`
    const m = await startPeer(cleanup, ns(3), lab.urls[3] as string, room, 'overlay', 'M@n3', { target: 2, max: 2 })
    const a = await startPeer(cleanup, ns(0), lab.urls[0] as string, room, 'overlay', 'A@n0', { target: 1, max: 1 })
    const signaled = `bench-signaled-${stamp}`
    const a2 = await startPeer(cleanup, ns(0), lab.urls[0] as string, signaled, 'overlay', "A'@n0", { target: 1, max: 1 })
    for (let r = 0; r < reps; r++) {
      // Directed: a fresh B, connected to M only (A is at its max: it neither offers nor answers).
      await until([a, m], ([sa, sm]) => sa?.linked.includes(m.id) === true && sa.connected === 1 && (sm?.connected ?? 0) < 2 && (sm?.openOffers ?? 0) >= 1, 30_000, 'A linked to M alone, M offering')
      const b = await startPeer(cleanup, ns(6), lab.urls[6] as string, room, 'overlay', `B${r}@n6`, { target: 1, max: 1 })
      await until([a, b], ([sa, sb]) => sb?.linked.includes(m.id) === true && sb.peers.length === 1 && sa?.peers.length === 1 && !sa.peers.includes(b.id), 30_000, 'B linked to M alone')
      const res = await a.ask<{ ok: boolean; ms: number; error?: string }>(`connect ${b.id}`, 'connected')
      if (!res.ok) throw new Error(`directed connection A → B${r}: ${res.error}`)
      out.directed.push(res.ms)
      await leave(b)
      // Through the routers: a fresh C meets A', which keeps its offers published.
      await until([a2], ([s]) => s?.connected === 0 && (s?.openOffers ?? 0) >= 1, 30_000, "A' alone, offering")
      const c = await startPeer(cleanup, ns(6), lab.urls[6] as string, signaled, 'overlay', `C${r}@n6`, { target: 1, max: 1 })
      const ready = c.lines.find((l) => l.event === 'ready') as Record<string, unknown>
      const opened = await c.waitFor((l) => l.event === 'peer' && l.id === a2.id, 30_000, "C's connection to A'")
      out.routers.push((opened.at as number) - (ready.at as number))
      await leave(c)
      ctx.progress(`connection ${r + 1}/${reps}: directed ${formatNumber(res.ms)} ms, through the routers ${formatNumber(out.routers[out.routers.length - 1] as number)} ms`)
    }
    return out
  } finally {
    await cleanup.run()
  }
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const quick = ctx.args.includes('--quick')
  const reps = quick ? 10 : 40
  const why = await netnsUnavailable()
  if (why !== undefined) throw new Error(`overlay: cannot run: ${why}; no rows were measured`)
  const cleanup = new Cleanup()
  const quietSeconds = quick ? 60 : 180
  let quiet: { perPeerPerMinute: number; peers: number } | undefined
  let opens: { directed: number[]; routers: number[] } | undefined
  const runs: Record<Mode, ModeRun> = {
    routers: { ms: new Map(FAR.map((h) => [h, []])), bytes: 0, changes: 0, overOverlay: 0, links: 0, maxConnections: 0 },
    overlay: { ms: new Map(FAR.map((h) => [h, []])), bytes: 0, changes: 0, overOverlay: 0, links: 0, maxConnections: 0 },
  }
  try {
    const lab = await setUp(ctx, cleanup)
    for (let done = 0, index = 0; done < reps; done += BLOCK, index++) {
      const k = Math.min(BLOCK, reps - done)
      await block(ctx, lab, 'routers', k, runs.routers, index)
      await block(ctx, lab, 'overlay', k, runs.overlay, index)
    }
    quiet = await quietRoom(ctx, lab, quietSeconds)
    opens = await directed(ctx, lab, quick ? 4 : 12)
  } finally {
    await cleanup.run()
  }
  const rows: BenchRow[] = FAR.map((h) =>
    row({
      section: 'a change from a peer behind n0 to a peer behind n<H>',
      name: `H=${h}: over the overlay`,
      unit: 'ms',
      value: summarize(runs.overlay.ms.get(h) as number[]),
      baseline: { name: "routers' HTTP push path", value: summarize(runs.routers.ms.get(h) as number[]) },
      target: TARGET_MS,
    }),
  )
  const o = runs.overlay
  const perLink = o.links > 0 && o.changes > 0 ? o.bytes / o.changes / o.links : Number.NaN
  rows.push(
    row({ section: 'the overlay', name: 'bytes per change per connection (its exchanges, both ways)', unit: 'B', value: perLink, target: BYTES_TARGET }),
    row({ section: 'the overlay', name: 'connections per peer, most', unit: 'connections', value: o.maxConnections, target: 9 }),
    row({ section: 'a stable room', name: `writes per peer per minute, nobody writing (${quiet?.peers ?? 0} peers, ${quietSeconds} s)`, unit: 'writes/min', value: quiet?.perPeerPerMinute ?? Number.NaN, target: 1.01 }),
  )
  if (opens && opens.directed.length > 0 && opens.routers.length > 0) {
    const routers = summarize(opens.routers)
    rows.push(
      row({
        section: 'a connection between peers behind n0 and n6',
        name: 'directed (room.connect): request → open',
        unit: 'ms',
        value: summarize(opens.directed),
        baseline: { name: 'signaled through the routers', value: routers },
        target: 1.2 * routers.median,
      }),
    )
  }
  return {
    title: `a room's change across a chain of routers: over the peers' connections vs the routers' push path (${quick ? 'quick, ' : ''}${reps} changes per mode)`,
    rows,
    notes: [
      'Four Node peers (werift) in one room: A behind n0, B behind n1, n3, n6 of a 7-router netns chain of malla daemons with their defaults.',
      'Baseline: the same peers with overlay: false (each sends its entries to its router; routers push hop by hop; the far peer hears its router\'s change feed).',
      'Time: from just before A\'s insert to the far peer\'s change event; the modes alternate in blocks of 5 changes with fresh peers.',
      'A stable room: every entry a connected peer writes itself (to its replica, and so to its router; not what it merges from others) while nobody writes: offer renewals, taken marks, answers, presence. At most 1 a minute is the target.',
      'A connection between peers behind n0 and n6: directed = A (behind n0, max 1, connected to M behind n3 only) calls room.connect(B) for a fresh B behind n6 (max 1, connected to M only): the offer and the answer travel as routed messages over A–M–B; from the call to the open connection, at A. Baseline = a fresh C behind n6 joins a room where A\' behind n0 keeps its offers in the routers\' tables: from C\'s ready (tables read, mesh started) to its connection to A\' open, at C; the answer reaches A\' through the 6 routers. Target: within 1.2× of the baseline\'s median.',
      `Bytes per change per connection: the overlay's request and reply bytes over ${o.changes} changes, divided by the connections (${o.links} at most in a block); periodic repairs included.`,
    ],
    params: { reps, chainHops: CHAIN_HOPS, far: FAR, block: BLOCK, quietSeconds },
  }
}
