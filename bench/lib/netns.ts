import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { constants } from 'node:os'
import { addAddress, deleteNamespacesSync, ip, linkUp, listLinks, listNamespaces, mapLimit, namespacePids, run } from '../../src/node/lab/netns.js'
import { linkAddress, planNetns, setUpNetns, tearDownNetns, type NetnsMade } from '../../src/node/lab/netns-lab.js'
import { links } from '../../src/node/lab/topology.js'
import { join } from 'node:path'
import type { Cleanup } from './cleanup.js'
import { startDaemon, type BenchDaemon } from './daemon.js'

/**
 * A chain of routers for the benchmarks, each in its own network namespace, built by `malla lab --netns`'s own
 * code (`planNetns`, `setUpNetns`, `tearDownNetns`: the same names `malla-<run id>-<router>`, veths
 * `m<run id>-<link>a|b`, addresses and link-local set-up, so `malla lab --clean` also removes what a
 * SIGKILLed benchmark left). On top of the lab's network, each namespace gets one more veth pair, to the
 * host's namespace, with a /30 of the lab's address plan (the links after the chain's): the benchmark
 * process reaches each daemon's API there, and at no other address. The daemons never probe those veths.
 */

/** Every daemon of a netns chain listens on this port, in its own namespace. */
export const NETNS_PORT = 8080

export interface NetnsRouter {
  readonly name: string
  readonly ns: string
  /** Its veths along the chain: where it finds its neighbours (`--discover`). */
  readonly discover: readonly string[]
  /** Its address on its veth to the host: where this process reaches its API. */
  readonly api: string
  /** The host's end of that veth. */
  readonly hostDev: string
  /** The host's address on that veth: where this process's requests come from, as the daemon sees them. */
  readonly hostAddress: string
}

export interface NetnsChain {
  readonly runId: string
  readonly hops: number
  readonly routers: readonly NetnsRouter[]
  /** Stops whatever still runs in the namespaces and deletes them (and so every veth); safe to call twice. */
  close(): Promise<void>
}

/** Why the netns variant cannot run here, or undefined when it can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `this is ${process.platform}, not Linux (it needs network namespaces)`
  const uid = process.getuid?.()
  if (uid !== 0) return `not running as root (uid ${uid}): network namespaces and veth pairs need root`
  for (const [program, args] of [['ip', ['-V']], ['ping', ['-V']], ['tc', ['-V']]] as const) {
    try {
      await run(program, args)
    } catch (e) {
      return (e as Error).message
    }
  }
  return undefined
}

// ---------------------------------------------------------------- last-resort cleanup

/** Run id → what its set-up made, until it is torn down. */
const live = new Map<string, NetnsMade>()
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * At process exit (an uncaught exception, process.exit) only synchronous work runs: kill what runs in the
 * namespaces and delete them. (bench/lib/daemon.ts SIGKILLs its daemons at exit too.)
 */
function onExit(): void {
  for (const made of live.values()) {
    for (const ns of made.namespaces) {
      const r = spawnSync('ip', ['netns', 'pids', ns], { timeout: 5000, killSignal: 'SIGKILL', encoding: 'utf8' })
      for (const pid of (r.stdout ?? '').split('\n').map(Number).filter((n) => Number.isInteger(n) && n > 0)) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone already
        }
      }
    }
    for (const f of deleteNamespacesSync(made.namespaces)) process.stderr.write(`bench: could not delete namespace ${f} (malla lab --clean retries)\n`)
    made.namespaces.length = 0
  }
}

/** How many set-ups are under way, and a signal that came meanwhile. */
let settingUp = 0
let pendingSignal: NodeJS.Signals | undefined

function exitOn(signal: NodeJS.Signals): never {
  process.stderr.write(`bench: ${signal}: stopping the daemons and deleting the network namespaces\n`)
  process.exit(128 + (constants.signals[signal] ?? 0))
}

/**
 * A signal while namespaces exist: exit (as the signal would), so that `onExit` removes them. During a
 * set-up, first let the `ip` command under way finish (each is bounded: a namespace it is adding would
 * otherwise appear after the exit), so the set-up stops at its next step and then exits.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (settingUp === 0) exitOn(signal)
  pendingSignal ??= signal
  process.stderr.write(`bench: ${signal}: stopping after the current \`ip\` command\n`)
}

const interrupted = (): void => {
  if (pendingSignal !== undefined) throw new Error(`interrupted by ${pendingSignal}`)
}

function guard(runId: string, made: NetnsMade): void {
  if (live.size === 0) {
    process.on('exit', onExit)
    for (const s of SIGNALS) process.on(s, onSignal)
  }
  live.set(runId, made)
}

function unguard(runId: string): void {
  live.delete(runId)
  if (live.size === 0) {
    process.off('exit', onExit)
    for (const s of SIGNALS) process.off(s, onSignal)
  }
}

// ---------------------------------------------------------------- the host's side

interface HostLink {
  readonly hostDev: string
  readonly nsDev: string
  readonly hostAddress: string
  readonly api: string
}

const toInt = (a: string): number => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0)

function overlaps(a: string, aLen: number, b: string, bLen: number): boolean {
  const len = Math.min(aLen, bLen)
  const span = 2 ** (32 - len)
  return Math.floor(toInt(a) / span) === Math.floor(toInt(b) / span)
}

/**
 * The host links' /30s must be nobody else's: no route (other than the default one) and no address of the
 * host's may overlap them, or the benchmark would shadow a real network (or reach something not its own).
 */
async function checkFree(hostLinks: readonly HostLink[]): Promise<void> {
  const routes = await ip(['-4', '-o', 'route', 'show', 'table', 'all'])
  const addresses = await ip(['-4', '-o', 'address', 'show'])
  const taken: Array<{ net: string; len: number; what: string }> = []
  for (const line of routes.split('\n')) {
    const m = /^(?:(?:unicast|local|broadcast|multicast|anycast|blackhole|unreachable|prohibit|throw|nat)\s+)?(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?/.exec(line.trim())
    if (m) taken.push({ net: m[1] as string, len: m[2] === undefined ? 32 : Number(m[2]), what: `route ${line.trim()}` })
  }
  for (const line of addresses.split('\n')) {
    const m = / inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(line)
    if (m) taken.push({ net: m[1] as string, len: 32, what: `address ${m[1]}/${m[2]}` })
  }
  for (const h of hostLinks) {
    const clash = taken.find((t) => overlaps(t.net, t.len, h.hostAddress, 30))
    if (clash) throw new Error(`the host already has ${clash.what}, which overlaps ${h.hostAddress}/30, the bench's link to a namespace: not using it`)
  }
}

// ---------------------------------------------------------------- the chain

/** H + 1 namespaces `malla-<id>-n0..nH` in a chain, each also linked to the host; undone by `close()` however the run ends. */
export async function openNetnsChain(hops: number): Promise<NetnsChain> {
  const runId = randomBytes(3).toString('hex')
  const count = hops + 1
  const graph = { names: Array.from({ length: count }, (_, i) => `n${i}`), links: links(count, 'chain') }
  const plans = planNetns(graph, runId)
  const hostLinks: HostLink[] = plans.map((_, i) => {
    const k = graph.links.length + i
    return { hostDev: `m${runId}-${k}a`, nsDev: `m${runId}-${k}b`, hostAddress: linkAddress(k, 0), api: linkAddress(k, 1) }
  })
  await checkFree(hostLinks)

  const made: NetnsMade = { namespaces: [], vethPairs: 0 }
  // Registered before the first namespace exists.
  guard(runId, made)
  let closed: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      try {
        // The daemons are stopped by their mesh; what may still run inside is a discovery ping (at most 3 s).
        for (const ns of made.namespaces) {
          for (const pid of await namespacePids(ns).catch(() => [] as number[])) {
            try {
              process.kill(pid, 'SIGKILL')
            } catch {
              // gone already
            }
          }
        }
        const names = [...made.namespaces]
        const problems = await tearDownNetns(made, runId)
        // The kernel frees a namespace (and its veths, the host's ends too) a moment after its last process
        // is gone: a host end still there then is not a leftover unless it stays.
        const deadline = Date.now() + 3000
        while (problems.length > 0 && Date.now() < deadline) {
          const left = [...(await listNamespaces()).filter((n) => names.includes(n)), ...(await listLinks()).filter((l) => l.startsWith(`m${runId}-`))]
          if (left.length === 0) problems.length = 0
          else await new Promise((resolve) => setTimeout(resolve, 100))
        }
        if (problems.length > 0) throw new Error(`network namespaces not all removed (malla lab --clean removes the rest): ${problems.join('; ')}`)
      } finally {
        if (made.namespaces.length === 0) unguard(runId)
      }
    })())
  settingUp++
  try {
    await setUpNetns(graph, plans, runId, made, interrupted)
    await mapLimit(plans, 8, async (p, i) => {
      interrupted()
      const h = hostLinks[i] as HostLink
      // Created with its far end already in the namespace: deleting the namespace deletes both ends.
      await ip(['link', 'add', h.hostDev, 'type', 'veth', 'peer', 'name', h.nsDev, 'netns', p.ns])
      await addAddress(p.ns, h.nsDev, `${h.api}/30`)
      await linkUp(p.ns, h.nsDev)
      await ip(['address', 'add', `${h.hostAddress}/30`, 'dev', h.hostDev])
      await ip(['link', 'set', 'dev', h.hostDev, 'up'])
    })
    // This process connects to these addresses only: each must leave by its own veth.
    for (const h of hostLinks) {
      const route = await ip(['-4', '-o', 'route', 'get', h.api])
      if (!route.includes(` dev ${h.hostDev} `)) throw new Error(`the host routes ${h.api} as "${route.trim()}", not via ${h.hostDev}`)
    }
  } catch (e) {
    await close().catch((c: Error) => process.stderr.write(`bench: ${c.message}\n`))
    throw e
  } finally {
    settingUp--
    // `onExit` deletes whatever is left.
    if (pendingSignal !== undefined && settingUp === 0) exitOn(pendingSignal)
  }
  return {
    runId,
    hops,
    routers: plans.map((p, i) => ({ name: p.name, ns: p.ns, discover: p.ifaces.map((f) => f.dev), api: (hostLinks[i] as HostLink).api, hostDev: (hostLinks[i] as HostLink).hostDev, hostAddress: (hostLinks[i] as HostLink).hostAddress })),
    close,
  }
}

// ---------------------------------------------------------------- helpers for what runs on a chain

/** A router's IPv4 address on one of its chain veths: where peers in its namespace reach it. */
export async function chainAddress(ns: string, dev: string): Promise<string> {
  const out = await ip(['-n', ns, '-4', '-o', 'address', 'show', 'dev', dev])
  const m = / inet (\d+\.\d+\.\d+\.\d+)\//.exec(out)
  if (!m) throw new Error(`no IPv4 address on ${dev} in ${ns}`)
  return m[1] as string
}

/** A namespace's UDP counters (`/proc/net/snmp`, which each network namespace has its own of). */
export interface UdpCounters {
  /** Datagrams delivered to sockets. */
  readonly received: number
  /** Datagrams dropped because the socket's receive buffer was full: the process did not read in time. */
  readonly receiveBufferFull: number
}

export async function udpCounters(ns: string): Promise<UdpCounters> {
  const lines = (await run('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp'])).split('\n').filter((l) => l.startsWith('Udp:'))
  const [names, values] = lines.map((l) => l.trim().split(/\s+/)) as [string[], string[]]
  const field = (name: string) => {
    const v = Number(values?.[names?.indexOf(name) ?? -1])
    if (!Number.isFinite(v)) throw new Error(`no Udp ${name} in ${ns}'s /proc/net/snmp`)
    return v
  }
  return { received: field('InDatagrams'), receiveBufferFull: field('RcvbufErrors') }
}

/** A link as slow as a mesh's, set on a namespace's interfaces by `limitLinks`. */
export interface LinkLimit {
  /** What each interface sends at most, in Mbit/s. */
  readonly mbit: number
  /** What it queues at most before it drops, in milliseconds at that rate (a Wi-Fi driver's queue, not a bloated one). */
  readonly queueMs: number
}

/**
 * Every interface of namespace `ns` but `lo` sends at most `limit.mbit` (a token bucket, `tc tbf`, on its root),
 * so that traffic through the namespace meets a bottleneck as on a mesh, where the radio links, not the CPUs,
 * set the pace, until the namespace is deleted.
 */
export async function limitLinks(ns: string, limit: LinkLimit): Promise<void> {
  if (!(limit.mbit > 0) || !(limit.queueMs > 0)) throw new Error(`not a link limit: ${limit.mbit} Mbit/s, ${limit.queueMs} ms of queue`)
  for (const dev of await listLinks(ns)) {
    if (dev === 'lo') continue
    // burst: enough for the kernel's timer granularity at this rate (rate / HZ, HZ up to 1000), and at least 32 KB.
    const burst = Math.max(32 * 1024, Math.ceil((limit.mbit * 1e6) / 8 / 250))
    await run('tc', ['-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${limit.mbit}mbit`, 'burst', String(burst), 'latency', `${limit.queueMs}ms`])
  }
}

/** Waits until each daemon (by its API `base`) has discovered at least `expected[i]` neighbours. */
export async function waitDiscoveredCounts(daemons: ReadonlyArray<{ readonly base: string }>, expected: readonly number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const counts = await Promise.all(
      daemons.map(async (d) => {
        const res = await fetch(`${d.base}/malla/v1/info`, { signal: AbortSignal.timeout(5000) })
        if (res.status !== 200) throw new Error(`GET ${d.base}/malla/v1/info answered ${res.status}`)
        return ((await res.json()) as { neighbours: Array<{ source: string }> }).neighbours.filter((n) => n.source === 'discovered').length
      }),
    )
    if (counts.every((c, i) => c >= (expected[i] as number))) return
    if (Date.now() > deadline) throw new Error(`after ${timeoutMs / 1000} s the daemons had discovered ${counts.join(',')} neighbours (expected ${expected.join(',')})`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** A netns chain with a malla daemon (defaults, `--discover`) in each namespace, every one past discovery. */
export interface RunningChain {
  readonly net: NetnsChain
  readonly daemons: readonly BenchDaemon[]
  /** Each router's base URL as peers in its namespace reach it (its first chain address). */
  readonly urls: readonly string[]
}

/**
 * Opens a chain of `hops` + 1 namespaces and starts a daemon in each, with its defaults and `--discover` on its
 * chain veths; resolves once each has found its neighbours. `cleanup` stops the daemons and deletes the
 * namespaces, whatever happens.
 */
export async function startChain(cleanup: Cleanup, hops: number, label: string): Promise<RunningChain> {
  const net = await openNetnsChain(hops)
  cleanup.add('delete the network namespaces', () => net.close())
  const dir = await cleanup.tempDir(`malla-bench-${label}-`)
  const daemons = await Promise.all(
    net.routers.map((r) =>
      startDaemon(['--port', String(NETNS_PORT), '--data', join(dir, r.name), '--name', r.name, ...r.discover.flatMap((d) => ['--discover', d])], { netns: r.ns, host: '::', base: `http://${r.api}:${NETNS_PORT}` }).then((d) => {
        cleanup.add(`stop daemon ${r.name}`, () => d.stop(3000))
        return d
      }),
    ),
  )
  await waitDiscoveredCounts(daemons, net.routers.map((r) => r.discover.length), 20_000)
  const urls = await Promise.all(net.routers.map(async (r) => `http://${await chainAddress(r.ns, r.discover[0] as string)}:${NETNS_PORT}`))
  return { net, daemons, urls }
}
