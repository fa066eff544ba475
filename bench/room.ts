/**
 * A room of many Node peers behind a chain of routers (issue 10's last measure): `npm run bench -- room
 * [--peers N] [--quick]`; needs root (namespaces) and a build.
 *
 * Set-up: 10 malla daemons with their defaults in a netns chain (n0..n9, `--discover`), and N Node peers
 * (werift; 100 by default) in one room, N/10 behind each router, with joinRoom's defaults (target 3, max 6) and
 * the room table `chat`. The peers behind one router live in one process (bench/lib/room-host.ts), so 100 peers
 * are 10 processes on this machine's 2 cores.
 *
 * Measured, once every peer is connected and the room has settled:
 * - one write by a random peer, until every peer holds it (from the change event of each peer's replica), over
 *   W writes one second apart: p50 and p95 of the time until the last peer has it. Baseline, in the same run:
 *   the same writes until every router holds them (each router's change feed, followed from this process): the
 *   routers' push path, which a peer without connections would wait for and then hear from its router.
 * - connections per peer (the most any peer held, at each look);
 * - bytes per change per connection: the overlay traffic of the table written (requests and replies, both ways)
 *   over the writes, divided by the writes and by the connections; and all the overlay carried meanwhile;
 * - a quiet room: every entry the peers write themselves (offers, renewals, answers, marks, presence) while
 *   nobody writes, per peer per minute.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Cleanup } from './lib/cleanup.js'
import { sleep } from './lib/daemon.js'
import { ChangeFeed, nowMs } from './lib/feed.js'
import { formatNumber } from './lib/format.js'
import { netnsUnavailable, startChain } from './lib/netns.js'
import { PeerProcess } from './lib/peer-process.js'
import { row, type BenchContext, type BenchResult } from './lib/result.js'
import { percentile, summarize } from './lib/stats.js'
import { prng } from './lib/data.js'
import { roomTableType } from '../src/overlay/room-tables.js'

const HOST_SCRIPT = fileURLToPath(new URL('./lib/room-host.ts', import.meta.url))
const ROUTERS = 10
const MAX_CONNECTIONS_TARGET = 8
const BYTES_TARGET = 1024
const QUIET_TARGET = 1.01
/** Every peer must have a connection within this much per peer (at least 180 s): handshakes share 2 cores here. */
const CONNECT_MS_PER_PEER = 5_000
/** The room has settled when no peer's connections changed for this long (looked at every second)... */
const SETTLED_MS = 15_000
/** ...or, at most, this long after every peer had one. */
const SETTLE_MAX_MS = 180_000

interface PeerStats {
  readonly id: string
  readonly connected: number
  readonly linked: number
  readonly bytes: number
  /** The part of `bytes` that the exchanges of the room table `chat` carried. */
  readonly chatBytes: number
  readonly writes: number
}

/** Wall-clock ms (what the hosts stamp their lines with) of a `nowMs()` reading of this process. */
const wallOf = (() => {
  const offset = performance.timeOrigin + performance.now() - nowMs()
  return (t: number) => t + offset
})()

async function stats(hosts: readonly PeerProcess[]): Promise<PeerStats[]> {
  const all = await Promise.all(hosts.map((h) => h.ask<{ peers: PeerStats[] }>('stats', 'stats')))
  return all.flatMap((s) => s.peers)
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const quick = ctx.args.includes('--quick')
  const peersArg = ctx.args.indexOf('--peers')
  const total = peersArg >= 0 ? Number(ctx.args[peersArg + 1]) : quick ? 20 : 100
  if (!Number.isInteger(total) || total < ROUTERS || total % ROUTERS !== 0) throw new Error(`room: --peers must be a multiple of ${ROUTERS}, at least ${ROUTERS}`)
  const perRouter = total / ROUTERS
  const writes = quick ? 10 : 30
  const quietSeconds = quick ? 60 : 120
  const why = await netnsUnavailable()
  if (why !== undefined) throw new Error(`room: cannot run: ${why}; no rows were measured`)
  const cleanup = new Cleanup()
  const reachAll: number[] = []
  const reachRouters: number[] = []
  const perPeer: number[] = []
  let maxConnections = 0
  let bytesPerLink = Number.NaN
  let allBytesPerLink = Number.NaN
  let quietBytesPerLinkPerMinute = Number.NaN
  let quietPerMinute = Number.NaN
  let joinSeconds = Number.NaN
  let connectedSeconds = Number.NaN
  let settledSeconds = Number.NaN
  let unsettled = false
  let connectedCounts: number[] = []
  try {
    const { net, daemons, urls } = await startChain(cleanup, ROUTERS - 1, 'room')
    ctx.progress(`${ROUTERS} routers in a chain (malla-${net.runId}-n0..n${ROUTERS - 1}), every one has found its neighbours`)

    const room = `bench-room-${Date.now().toString(36)}`
    const chatType = roomTableType(room, 'chat')
    const feeds = await Promise.all(daemons.map((d) => ChangeFeed.open(d.base, [chatType], 20_000)))
    cleanup.add('close the change feeds', () => feeds.forEach((f) => f.close()))

    const started = Date.now()
    const hosts = await Promise.all(
      net.routers.map(async (r, i) => {
        const child = spawn('ip', ['netns', 'exec', r.ns, process.execPath, '--import', 'tsx', HOST_SCRIPT, urls[i] as string, room, String(perRouter)], { stdio: ['pipe', 'pipe', 'pipe'] })
        const host = new PeerProcess(child, `peers@${r.name}`)
        cleanup.add(`stop the peers behind ${r.name}`, () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        })
        await host.waitFor((l) => l.event === 'ready', 120_000, 'every peer joined')
        return host
      }),
    )
    joinSeconds = (Date.now() - started) / 1000
    ctx.progress(`${total} peers joined in ${formatNumber(joinSeconds)} s (${perRouter} behind each router)`)
    // Connected: every peer to at least one other, and syncing on it; then the room settles (no connection
    // opens or closes for SETTLED_MS), so the writes meet a quiet room, not one still making its connections.
    const connectMs = Math.max(180_000, total * CONNECT_MS_PER_PEER)
    const deadline = Date.now() + connectMs
    for (;;) {
      const s = await stats(hosts)
      maxConnections = Math.max(maxConnections, ...s.map((p) => p.connected))
      const alone = s.filter((p) => p.connected === 0 || p.linked === 0).length
      if (alone === 0) break
      if (Date.now() > deadline) throw new Error(`room: ${alone} of ${total} peers still without a connection (and a sync link on it) after ${formatNumber(connectMs / 1000)} s: ${JSON.stringify(s.map((p) => [p.connected, p.linked]))}`)
      await sleep(1000)
    }
    connectedSeconds = (Date.now() - started) / 1000
    ctx.progress(`every peer has a connection after ${formatNumber(connectedSeconds)} s; waiting until no connection opens or closes for ${SETTLED_MS / 1000} s`)
    let shape = ''
    let since = Date.now()
    const settleDeadline = Date.now() + SETTLE_MAX_MS
    for (;;) {
      const s = await stats(hosts)
      maxConnections = Math.max(maxConnections, ...s.map((p) => p.connected))
      const now = s.map((p) => `${p.connected}/${p.linked}`).join(',')
      if (now !== shape) {
        shape = now
        since = Date.now()
      }
      if (Date.now() - since >= SETTLED_MS) break
      if (Date.now() > settleDeadline) {
        ctx.progress(`the room's connections still changed after ${SETTLE_MAX_MS / 1000} s more: measuring anyway`)
        unsettled = true
        break
      }
      await sleep(1000)
    }
    settledSeconds = (Date.now() - started) / 1000
    ctx.progress(`settled after ${formatNumber(settledSeconds)} s`)

    // Writes, one second apart, each by a random peer.
    const rand = prng(10)
    const before = await stats(hosts)
    const writesStarted = Date.now()
    for (let w = 0; w < writes; w++) {
      const writer = Math.floor(rand() * total)
      const host = hosts[Math.floor(writer / perRouter)] as PeerProcess
      const key = `w${w}`
      const marks = hosts.map((h) => h.lines.length)
      host.send(`write ${writer % perRouter} ${key}`)
      const wrote = await host.waitFor((l) => l.event === 'wrote' && l.key === key, 20_000, `the write of ${key}`)
      const arrivals = await Promise.all(
        hosts.map(async (h, i) => {
          const got: number[] = []
          for (let p = 0; p < perRouter; p++) {
            const line = await h.waitFor((l) => l.event === 'entry' && l.key === key && l.i === p, 30_000, `${key} at peer ${p} of ${h.label}`, marks[i])
            got.push(line.at as number)
          }
          return got
        }),
      )
      const t0 = wrote.at as number
      const times = arrivals.flat().map((t) => t - t0)
      reachAll.push(Math.max(...times))
      perPeer.push(...times)
      const routersHave = await Promise.all(feeds.map((f) => f.waitFor(() => f.firstSeen.has(key), 30_000)))
      if (routersHave.every(Boolean)) reachRouters.push(Math.max(...feeds.map((f) => wallOf(f.firstSeen.get(key) as number))) - t0)
      ctx.progress(`write ${w + 1}/${writes} by peer ${writer}: every peer after ${formatNumber(reachAll[reachAll.length - 1] as number)} ms, every router after ${formatNumber(reachRouters[reachRouters.length - 1] ?? Number.NaN)} ms`)
      await sleep(1000)
    }
    const after = await stats(hosts)
    connectedCounts = after.map((p) => p.connected)
    maxConnections = Math.max(maxConnections, ...connectedCounts)
    const links = after.reduce((n, p) => n + p.linked, 0) / 2
    const bytes = after.reduce((n, p, i) => n + p.bytes - (before[i]?.bytes ?? 0), 0)
    const chatBytes = after.reduce((n, p, i) => n + p.chatBytes - (before[i]?.chatBytes ?? 0), 0)
    const windowS = (Date.now() - writesStarted) / 1000
    // Each end counts the exchanges it starts (requests and their replies), so the sum counts each once.
    allBytesPerLink = bytes / writes / links
    bytesPerLink = chatBytes / writes / links
    ctx.progress(`${links} connections; ${formatNumber(bytes)} B on them over ${writes} writes in ${formatNumber(windowS)} s`)

    // A quiet room.
    await sleep(5000)
    const q0 = await stats(hosts)
    ctx.progress(`quiet room: counting the peers' own writes for ${quietSeconds} s`)
    await sleep(quietSeconds * 1000)
    const q1 = await stats(hosts)
    maxConnections = Math.max(maxConnections, ...q1.map((p) => p.connected))
    quietPerMinute = q1.reduce((n, p, i) => n + p.writes - (q0[i]?.writes ?? 0), 0) / total / (quietSeconds / 60)
    // What the connections carry with nobody writing: the signaling records that still move (every renewal
    // crosses every connection), and the periodic repairs of every room table on every connection.
    const quietBytes = q1.reduce((n, p, i) => n + p.bytes - (q0[i]?.bytes ?? 0), 0)
    quietBytesPerLinkPerMinute = quietBytes / links / (quietSeconds / 60)
    // Every peer leaves (withdraws its records, closes its connections); a host that hangs is killed by cleanup.
    await Promise.all(
      hosts.map((h) => {
        const exited = new Promise<void>((resolve) => h.child.once('exit', () => resolve()))
        h.send('leave')
        return Promise.race([exited, sleep(10_000)])
      }),
    )
  } finally {
    await cleanup.run()
  }
  const section = `a room of ${total} peers behind ${ROUTERS} routers`
  const rows = [
    row({ section, name: 'one write, until every peer has it (p50 of writes)', unit: 'ms', value: summarize(reachAll), baseline: { name: 'until every router has it', value: summarize(reachRouters) } }),
    row({ section, name: 'one write, until every peer has it (p95 of writes)', unit: 'ms', value: percentile(reachAll, 95), baseline: { name: 'until every router has it', value: percentile(reachRouters, 95) } }),
    row({ section, name: 'one write, per peer (p50 of arrivals)', unit: 'ms', value: summarize(perPeer) }),
    row({ section, name: 'connections per peer, most', unit: 'connections', value: maxConnections, target: MAX_CONNECTIONS_TARGET + 0.01 }),
    row({ section, name: 'bytes per change per connection', unit: 'B', value: bytesPerLink, target: BYTES_TARGET }),
    row({ section, name: 'every table\'s traffic in the same window, per change per connection', unit: 'B', value: allBytesPerLink }),
    row({ section, name: `bytes per connection per minute, nobody writing (${quietSeconds} s)`, unit: 'B/min', value: quietBytesPerLinkPerMinute }),
    row({ section, name: `writes per peer per minute, nobody writing (${quietSeconds} s)`, unit: 'writes/min', value: quietPerMinute, target: QUIET_TARGET }),
  ]
  const histogram = new Map<number, number>()
  for (const c of connectedCounts) histogram.set(c, (histogram.get(c) ?? 0) + 1)
  return {
    title: `a room of ${total} Node peers behind a chain of ${ROUTERS} routers: how fast a write reaches everyone, and what it costs`,
    rows,
    notes: [
      `${ROUTERS} malla daemons with their defaults in a netns chain (n0..n${ROUTERS - 1}, --discover); ${total} Node peers (werift), ${perRouter} behind each router, all in one process per router (bench/lib/room-host.ts), with joinRoom's defaults (target 3, max 6) and the room table chat. All share this machine's 2 cores.`,
      `Joining: every peer had joined after ${formatNumber(joinSeconds)} s (joins spread 150 ms apart in each process), every one had a connection (and synced on it) after ${formatNumber(connectedSeconds)} s, and the room had settled (no connection opened or closed for ${SETTLED_MS / 1000} s) after ${formatNumber(settledSeconds)} s${unsettled ? ' (NOT settled: measured anyway after the bound)' : ''}.`,
      `${writes} writes one second apart, each by a random peer (seeded): time from the write to the change event of the last peer to get it (every peer did), and, as the baseline, to the change feed of the last router to get it (the routers' push path; a peer with no connection hears its router after that).`,
      `Connections per peer at the end of the writes: ${[...histogram].sort((a, b) => a[0] - b[0]).map(([c, n]) => `${n} peers with ${c}`).join(', ')}.`,
      `Bytes per change per connection: what the exchanges of the table written (chat: pushes, their answers, and its repairs) carried on every connection over the ${writes} writes (the requests each end started and their replies, so each exchange counted once), divided by the writes and the connections. "Every table's traffic": all the overlay carried in the same window (signaling records and presence, which always travel on the overlay, and every table's periodic repair, every 30 s), divided the same way; the quiet room's row gives that background alone.`,
      `A quiet room: every entry the peers write themselves (offer renewals, answers, marks, presence) over ${quietSeconds} s with nobody writing, per peer per minute.`,
    ],
    params: { routers: ROUTERS, peers: total, perRouter, writes, quietSeconds },
  }
}
