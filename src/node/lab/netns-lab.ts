import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MallaError } from '../../core/errors.js'
import { openTheApp, stopChild, waitReady } from './children.js'
import {
  addAddress,
  addDefaultRoute,
  addNamespace,
  addVethPair,
  deleteLink,
  deleteNamespace,
  deleteNamespacesSync,
  ip,
  linkUp,
  listLinks,
  listNamespaces,
  mapLimit,
  namespacePids,
  sysctl,
  waitLinkLocal,
} from './netns.js'
import { isConnected, type LabGraph } from './topology.js'

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))

/** Every namespace a lab makes is `malla-<run id>-<router>`; every veth end is `m<run id>-<link><a|b>`. */
export const NAMESPACE_PATTERN = /^malla-[0-9a-f]{6}-/
export const VETH_PATTERN = /^m[0-9a-f]{6}-\d+[ab]$/

export interface NetnsLabOptions {
  readonly graph: LabGraph
  /** Every daemon listens on this port, each in its own namespace. */
  readonly port: number
  readonly dataDir?: string
  readonly bleachIntervalMs?: number
  readonly syncIntervalMs?: number
  readonly discoverIntervalMs?: number
  readonly verbose: boolean
  readonly startTimeoutMs?: number
  /** Run id (6 hex digits); random when absent. */
  readonly runId?: string
}

/** One router's place in the lab: its namespace, its veth ends and their IPv4 addresses. */
export interface RouterPlan {
  readonly name: string
  readonly ns: string
  readonly ifaces: ReadonlyArray<{ readonly dev: string; readonly cidr: string; readonly address: string; readonly peer: string; readonly peerAddress: string }>
}

/** IPv4 of link k, side 0 or 1: a /30 per link, 10.99.k.1 and 10.99.k.2 (10.100.0.x after 256 links, ...). */
export function linkAddress(k: number, side: 0 | 1): string {
  const second = 99 + Math.floor(k / 256)
  if (second > 255) throw new MallaError('BAD_INPUT', 'too many links for the lab\'s address plan')
  return `10.${second}.${k % 256}.${side + 1}`
}

/** Names and addresses for every router and link; pure, so it is unit-tested. */
export function planNetns(graph: LabGraph, runId: string): RouterPlan[] {
  const plans = graph.names.map((name) => ({ name, ns: `malla-${runId}-${name}`, ifaces: [] as RouterPlan['ifaces'][number][] }))
  graph.links.forEach(([a, b], k) => {
    const pa = plans[a]
    const pb = plans[b]
    if (!pa || !pb) throw new MallaError('BAD_INPUT', `link ${k} names a router that does not exist`)
    const [addrA, addrB] = [linkAddress(k, 0), linkAddress(k, 1)]
    pa.ifaces.push({ dev: `m${runId}-${k}a`, cidr: `${addrA}/30`, address: addrA, peer: pb.name, peerAddress: addrB })
    pb.ifaces.push({ dev: `m${runId}-${k}b`, cidr: `${addrB}/30`, address: addrB, peer: pa.name, peerAddress: addrA })
  })
  return plans
}

/**
 * Static IPv4 routes that make the lab a routed mesh, as babel or bmx7 make a LibreMesh network: from each
 * router, every link's /30 that it is not on goes via the neighbour on a shortest path (breadth first,
 * lowest link first on ties). Pure, so it is unit-tested. Returns, per router, `[subnet, via, dev]`.
 */
export function planRoutes(graph: LabGraph, plans: readonly RouterPlan[]): Array<Array<readonly [string, string, string]>> {
  const adjacent = graph.names.map(() => [] as Array<{ to: number; k: number }>)
  graph.links.forEach(([a, b], k) => {
    adjacent[a]?.push({ to: b, k })
    adjacent[b]?.push({ to: a, k })
  })
  return plans.map((plan, from) => {
    // First hop (the link leaving `from`) toward every router.
    const firstLink = new Map<number, number>([[from, -1]])
    const distance = new Map<number, number>([[from, 0]])
    const queue = [from]
    while (queue.length > 0) {
      const at = queue.shift() as number
      for (const { to, k } of adjacent[at] ?? []) {
        if (firstLink.has(to)) continue
        firstLink.set(to, at === from ? k : (firstLink.get(at) as number))
        distance.set(to, (distance.get(at) as number) + 1)
        queue.push(to)
      }
    }
    // planNetns gives each router its ifaces in link order.
    const ifaceOfLink = new Map<number, RouterPlan['ifaces'][number]>()
    let i = 0
    graph.links.forEach(([a, b], k) => {
      if (a === from || b === from) ifaceOfLink.set(k, plan.ifaces[i++] as RouterPlan['ifaces'][number])
    })
    const routes: Array<readonly [string, string, string]> = []
    graph.links.forEach(([a, b], k) => {
      if (ifaceOfLink.has(k)) return
      // Toward the nearer end of the link; a disconnected topology leaves some links without a route.
      const ends = [a, b].filter((r) => distance.has(r)).sort((x, y) => (distance.get(x) as number) - (distance.get(y) as number) || (firstLink.get(x) as number) - (firstLink.get(y) as number))
      if (ends.length === 0) return
      const iface = ifaceOfLink.get(firstLink.get(ends[0] as number) as number)
      if (iface) routes.push([`${linkAddress(k, 0).replace(/\.\d+$/, '.0')}/30`, iface.peerAddress, iface.dev])
    })
    return routes
  })
}

export function assertRoot(what: string): void {
  if (process.platform !== 'linux') throw new MallaError('BAD_INPUT', `${what} needs Linux network namespaces`)
  if (process.getuid?.() !== 0) throw new MallaError('BAD_INPUT', `${what} needs root (it works on network namespaces and veth pairs); run it with sudo, or use the loopback lab (no --netns)`)
}

const IPV6_ON = { 'net.ipv6.conf.all.disable_ipv6': 0, 'net.ipv6.conf.default.disable_ipv6': 0, 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 }

/** What `setUpNetns` has made so far: each namespace as soon as it exists, so that cleanup can delete it whatever happens next. */
export interface NetnsMade {
  readonly namespaces: string[]
  vethPairs: number
}

/**
 * Makes the lab's network: the namespaces of `plans` (from `planNetns(graph, runId)`), a veth pair per link,
 * IPv6 (no DAD) and the IPv4 /30s on every veth, a default route via each router's first link; resolves
 * once every veth has its IPv6 link-local address, i.e. is ready for discovery. `check` runs before each
 * step and throws to stop. Whatever it made is in `made`, for `tearDownNetns`, also when it fails.
 */
export async function setUpNetns(graph: LabGraph, plans: readonly RouterPlan[], runId: string, made: NetnsMade, check: () => void = () => {}): Promise<void> {
  for (const p of plans) {
    check()
    await addNamespace(p.ns)
    made.namespaces.push(p.ns)
  }
  await mapLimit(plans, 8, async (p) => {
    check()
    await sysctl(p.ns, IPV6_ON)
    await linkUp(p.ns, 'lo')
  })
  await mapLimit(graph.links, 8, async ([a, b], k) => {
    check()
    const pa = plans[a] as RouterPlan
    const pb = plans[b] as RouterPlan
    await addVethPair({ ns: pa.ns, dev: `m${runId}-${k}a` }, { ns: pb.ns, dev: `m${runId}-${k}b` })
    made.vethPairs++
  })
  await mapLimit(plans, 8, async (p) => {
    check()
    for (const f of p.ifaces) {
      await sysctl(p.ns, { [`net.ipv6.conf.${f.dev}.disable_ipv6`]: 0, [`net.ipv6.conf.${f.dev}.accept_dad`]: 0 })
      await addAddress(p.ns, f.dev, f.cidr)
      await linkUp(p.ns, f.dev)
    }
    // Chromium gathers ICE candidates only on the interface of the default route.
    const first = p.ifaces[0]
    if (first) await addDefaultRoute(p.ns, first.peerAddress, first.dev)
  })
  // Every router forwards, and knows a way to every link: a host on one router reaches a host on any other.
  const routes = planRoutes(graph, plans)
  await mapLimit(plans, 8, async (p, i) => {
    check()
    await sysctl(p.ns, { 'net.ipv4.ip_forward': 1 })
    for (const [subnet, via, dev] of routes[i] ?? []) await ip(['-n', p.ns, 'route', 'add', subnet, 'via', via, 'dev', dev])
  })
  // Every link ready for discovery before any router probes it.
  await mapLimit(plans, 8, async (p) => {
    check()
    for (const f of p.ifaces) await waitLinkLocal(p.ns, f.dev)
  })
}

/**
 * Deletes the namespaces in `made`, newest first (their veths go with them), then any link named
 * `m<runId>-*` left in the host's namespace; what fails is retried synchronously and returned.
 * Stop the processes inside first. `made.namespaces` is empty afterwards.
 */
export async function tearDownNetns(made: NetnsMade, runId: string): Promise<string[]> {
  const problems: string[] = []
  for (const ns of [...made.namespaces].reverse()) {
    try {
      await deleteNamespace(ns)
      made.namespaces.splice(made.namespaces.indexOf(ns), 1)
    } catch (e) {
      problems.push((e as Error).message)
    }
  }
  // Veths are created inside the namespaces and die with them; remove any that ended up in the host anyway.
  try {
    for (const dev of await listLinks()) if (dev.startsWith(`m${runId}-`)) await deleteLink(dev)
  } catch (e) {
    problems.push((e as Error).message)
  }
  if (made.namespaces.length > 0) deleteNamespacesSync(made.namespaces).forEach((f) => problems.push(f))
  made.namespaces.length = 0
  return problems
}

/**
 * `malla lab --netns`: each router in its own network namespace, linked by veth pairs as the graph says,
 * each daemon started with `--discover` on its veths and no `--peer`: routers find each other by pinging
 * ff02::1, as LibreMesh routers do. Prints `router <name> http://<IPv4>:<port>/` per router once it listens and has probed its links.
 * On SIGINT/SIGTERM/SIGHUP, on any failure while starting, and at process exit, stops the daemons and
 * deletes every namespace (and so every veth) it made.
 */
export async function runNetnsLab(options: NetnsLabOptions): Promise<void> {
  assertRoot('malla lab --netns')
  await ip(['-V']) // a clear "ip not found (install iproute2)" before anything else
  const runId = options.runId ?? randomBytes(3).toString('hex')
  const { graph } = options
  if (graph.names.length > 1 && graph.links.length === 0) throw new MallaError('BAD_INPUT', 'the lab has no links')
  if (!isConnected(graph)) process.stderr.write('lab: warning: the topology is not connected; some routers will never hear of others\n')
  const plans = planNetns(graph, runId)
  const root = options.dataDir ?? (await mkdtemp(join(tmpdir(), `malla-lab-${runId}-`)))
  const made: NetnsMade = { namespaces: [], vethPairs: 0 }
  const children: ChildProcess[] = []
  let stopping = false
  let cleaned = false

  // Last resort, when the process exits without the finally below having run (an uncaught exception,
  // process.exit): only synchronous work is possible here.
  const onExit = () => {
    if (cleaned) return
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    const failed = deleteNamespacesSync(made.namespaces)
    for (const f of failed) process.stderr.write(`lab: could not delete namespace ${f}\n`)
    if (options.dataDir === undefined) rmSync(root, { recursive: true, force: true })
  }
  process.on('exit', onExit)
  let signalled: (signal: string) => void = () => {}
  const stopped = new Promise<string>((resolve) => (signalled = resolve))
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`lab: ${signal}, stopping\n`)
    signalled(signal)
  }
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal)
  /**
   * Rejects as soon as a signal arrives, so a slow start is interrupted too. The work itself goes on
   * until its next `check()`; cleanup waits for it (`pending`), so nothing is made after cleanup began.
   */
  let pending: Promise<unknown> = Promise.resolve()
  const orStop = <T>(p: Promise<T>): Promise<T> => {
    pending = p.catch(() => {})
    return Promise.race([p, stopped.then((s): never => { throw new Interrupted(s) })])
  }
  const check = () => {
    if (stopping) throw new Interrupted('stop')
  }

  try {
    await orStop(setUpNetns(graph, plans, runId, made, check))
    for (const p of plans) {
      const links = p.ifaces.map((f) => `${f.dev}>${f.peer}`).join(',')
      process.stderr.write(`lab: router ${p.name} namespace ${p.ns} ipv4 ${p.ifaces[0]?.address ?? '-'} links ${links || '-'}\n`)
    }

    const urls = await orStop(
      Promise.all(
        plans.map(async (p) => {
          const dir = join(root, p.name)
          await mkdir(dir, { recursive: true })
          check()
          const args = ['netns', 'exec', p.ns, process.execPath, CLI, 'peer', '--host', '::', '--port', String(options.port), '--name', p.name, '--data', dir]
          for (const f of p.ifaces) args.push('--discover', f.dev)
          if (options.discoverIntervalMs) args.push('--discover-interval', String(options.discoverIntervalMs / 1000))
          if (options.bleachIntervalMs) args.push('--bleach-interval', String(options.bleachIntervalMs / 1000))
          if (options.syncIntervalMs) args.push('--sync-interval', String(options.syncIntervalMs / 1000))
          if (options.verbose) args.push('--verbose')
          const child = spawn('ip', args, { stdio: ['ignore', 'inherit', 'pipe'] })
          children.push(child)
          child.on('exit', (code, signal) => {
            if (!stopping) process.stderr.write(`lab: router ${p.name} exited (${signal ?? code})\n`)
          })
          // Listed once it listens and has probed its links, so the mesh is formed when the last line is out.
          const probes = p.ifaces.length > 0 ? / first discovery probe done / : undefined
          const { ready } = await waitReady(child, options.startTimeoutMs ?? 15_000, `router ${p.name} (namespace ${p.ns})`, probes, options.verbose)
          const n = Number(/ neighbours=(\d+)/.exec(ready ?? '')?.[1] ?? 0)
          if (n < p.ifaces.length) {
            process.stderr.write(`lab: warning: router ${p.name} found ${n} of its ${p.ifaces.length} neighbours on its first probe; the next probe may find the rest\n`)
          }
          return `http://${p.ifaces[0]?.address ?? '127.0.0.1'}:${options.port}/`
        }),
      ),
    )
    urls.forEach((url, i) => process.stdout.write(`router ${plans[i]?.name} ${url}\n`))
    process.stderr.write(openTheApp(urls))
    process.stderr.write(
      `lab: ${plans.length} routers in network namespaces, ${graph.links.length} links; they find each other by ping ff02::1. ` +
        `Reach one with: ip netns exec ${plans[0]?.ns} malla get TYPE --url http://127.0.0.1:${options.port}. Ctrl-C stops them\n`,
    )
    await stopped
  } catch (e) {
    if (!(e instanceof Interrupted)) throw e
  } finally {
    stopping = true
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSignal)
    await Promise.all(children.map((c) => stopChild(c)))
    // Setup interrupted by a signal stops at its next check (every `ip` call is bounded by a timeout).
    await pending
    await Promise.all(children.map((c) => stopChild(c)))
    const namespaces = made.namespaces.length
    const { vethPairs } = made
    const problems = await tearDownNetns(made, runId)
    cleaned = true
    process.off('exit', onExit)
    if (options.dataDir === undefined) await rm(root, { recursive: true, force: true })
    for (const p of problems) process.stderr.write(`lab: cleanup: ${p} (malla lab --clean retries)\n`)
    if (problems.length === 0) process.stderr.write(`lab: removed ${namespaces} namespaces and ${vethPairs} veth pairs\n`)
  }
}

class Interrupted extends Error {
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`)
  }
}

/**
 * `malla lab --clean`: removes what earlier netns labs left behind (after a SIGKILL, a power cut...):
 * their processes, their namespaces (`malla-<6 hex>-*`) and any veth end named `m<6 hex>-<n><a|b>` in the
 * host's namespace. Returns one line per thing removed.
 */
export async function cleanLabs(print: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<string[]> {
  assertRoot('malla lab --clean')
  const removed: string[] = []
  const report = (line: string) => {
    removed.push(line)
    print(line)
  }
  for (const ns of (await listNamespaces()).filter((n) => NAMESPACE_PATTERN.test(n))) {
    const pids = await namespacePids(ns).catch(() => [] as number[])
    if (pids.length > 0) {
      await killAll(pids)
      report(`stopped ${pids.length} process${pids.length === 1 ? '' : 'es'} in ${ns} (${pids.join(' ')})`)
    }
    await deleteNamespace(ns)
    report(`removed namespace ${ns}`)
  }
  for (const dev of (await listLinks()).filter((d) => VETH_PATTERN.test(d))) {
    try {
      await deleteLink(dev)
      report(`removed veth ${dev}`)
    } catch (e) {
      // Deleting one end of a pair removes the other, which may already be gone.
      if (!/Cannot find device/.test((e as Error).message)) throw e
    }
  }
  if (removed.length === 0) print('nothing to clean')
  return removed
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** SIGTERM, and SIGKILL to whatever still runs after 3 s. */
async function killAll(pids: readonly number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM')
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 3000
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}
