import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { deleteNamespacesSync, ip, listLinks, listNamespaces, namespacePids } from '../../src/node/lab/netns.js'

/**
 * One network namespace for `bench/hostile.ts`, where a daemon sees this process as hosts of a LAN, from
 * several addresses of their own (an attacker, an honest client, ...): a veth pair between the host's
 * namespace and the new one, a /24 of 10.250.0.0/16 that no route or address of the host's overlaps
 * (checked first), the namespace's end at `.1` and the host's end holding `.2`, `.3`, ... Names follow
 * `malla lab --netns` (`malla-<6 hex>-hostile`, veth `m<6 hex>-0a|b`), so `malla lab --clean` removes what a
 * SIGKILLed run left. The veth is created with its far end already in the namespace: deleting the namespace
 * deletes both ends, and with them the host's addresses.
 *
 * `close()` kills whatever runs in the namespace and deletes it; at process exit (a crash, process.exit after
 * a signal) `closeAllSync()` does the same synchronously, for every namespace still open.
 */

export interface HostileNet {
  readonly runId: string
  readonly ns: string
  /** The host's end of the veth pair, and the namespace's. */
  readonly hostDev: string
  readonly nsDev: string
  /** e.g. `10.250.37`: the /24 is `<prefix>.0/24`. */
  readonly prefix: string
  /** The namespace's address (`<prefix>.1`), where its daemon listens. */
  readonly inside: string
  /** Addresses on the host's end, in the order asked for (`<prefix>.2`, `.3`, ...). */
  readonly host: readonly string[]
  close(): Promise<void>
}

/** Namespaces made and not yet deleted (for the synchronous exit path). */
const open = new Set<string>()

/** Deletes every namespace still open, killing what runs inside first; synchronous, for a process 'exit' handler. */
export function closeAllSync(): void {
  for (const ns of open) {
    // Deleted already (by a `close()` still under way when the process exits).
    if (!existsSync(`/run/netns/${ns}`)) continue
    const r = spawnSync('ip', ['netns', 'pids', ns], { timeout: 5000, killSignal: 'SIGKILL', encoding: 'utf8' })
    for (const pid of (r.stdout ?? '').split('\n').map(Number).filter((n) => Number.isInteger(n) && n > 0)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone already
      }
    }
    for (const f of deleteNamespacesSync([ns])) process.stderr.write(`bench: could not delete namespace ${f} (malla lab --clean retries)\n`)
  }
  open.clear()
}

const toInt = (a: string): number => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0)

/** Which 10.250.x.0/24 overlap a route (other than the default one) or an address of the host's. */
async function takenSubnets(): Promise<Set<number>> {
  const routes = await ip(['-4', '-o', 'route', 'show', 'table', 'all'])
  const addresses = await ip(['-4', '-o', 'address', 'show'])
  const nets: Array<{ net: string; len: number }> = []
  for (const line of routes.split('\n')) {
    const m = /^(?:(?:unicast|local|broadcast|multicast|anycast|blackhole|unreachable|prohibit|throw|nat)\s+)?(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?/.exec(line.trim())
    if (m) nets.push({ net: m[1] as string, len: m[2] === undefined ? 32 : Number(m[2]) })
  }
  for (const line of addresses.split('\n')) {
    const m = / inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(line)
    if (m) nets.push({ net: m[1] as string, len: Number(m[2]) })
  }
  const taken = new Set<number>()
  const base = toInt('10.250.0.0')
  for (let x = 0; x < 256; x++) {
    const lo = base + x * 256
    for (const { net, len } of nets) {
      if (len === 0) continue
      const span = 2 ** (32 - Math.min(len, 32))
      const start = Math.floor(toInt(net) / span) * span
      // Two prefixes overlap when one contains the other's start.
      if ((lo >= start && lo < start + span) || (start >= lo && start < lo + 256)) taken.add(x)
    }
  }
  return taken
}

/**
 * Makes the namespace and its link, with `hostAddresses` addresses on the host's end. `interrupted()` is
 * called between steps (it throws to stop the set-up); whatever was made is deleted before an error is thrown.
 */
export async function openHostileNet(hostAddresses: number, interrupted: () => void = () => {}): Promise<HostileNet> {
  if (hostAddresses < 1 || hostAddresses > 200) throw new Error(`${hostAddresses} host addresses: expected 1 to 200`)
  const runId = randomBytes(3).toString('hex')
  const ns = `malla-${runId}-hostile`
  const hostDev = `m${runId}-0a`
  const nsDev = `m${runId}-0b`
  const taken = await takenSubnets()
  const start = 1 + Math.floor(Math.random() * 250)
  let x: number | undefined
  for (let i = 0; i < 256 && x === undefined; i++) {
    const candidate = (start + i) % 256
    if (!taken.has(candidate)) x = candidate
  }
  if (x === undefined) throw new Error('every 10.250.x.0/24 overlaps a route or address of this host: not making one more')
  const prefix = `10.250.${x}`
  const inside = `${prefix}.1`
  const host = Array.from({ length: hostAddresses }, (_, i) => `${prefix}.${i + 2}`)

  let closed: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      if (!open.has(ns)) return
      for (const pid of await namespacePids(ns).catch(() => [] as number[])) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone already
        }
      }
      try {
        await ip(['netns', 'delete', ns])
      } catch (e) {
        if (!/No such file|not found|does not exist/i.test((e as Error).message)) throw e
      }
      open.delete(ns)
      // The kernel frees the namespace, and so the host's end of the veth, a moment after its last process.
      const deadline = Date.now() + 3000
      while (Date.now() < deadline) {
        if (!(await listLinks()).includes(hostDev) && !(await listNamespaces()).includes(ns)) return
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      throw new Error(`${ns} or ${hostDev} still there 3 s after deleting the namespace (malla lab --clean removes them)`)
    })())

  // Registered before the namespace exists: the exit path deletes it by name whatever step fails.
  open.add(ns)
  try {
    interrupted()
    await ip(['netns', 'add', ns])
    interrupted()
    await ip(['-n', ns, 'link', 'set', 'dev', 'lo', 'up'])
    await ip(['link', 'add', hostDev, 'type', 'veth', 'peer', 'name', nsDev, 'netns', ns])
    interrupted()
    await ip(['-n', ns, 'address', 'add', `${inside}/24`, 'dev', nsDev])
    await ip(['-n', ns, 'link', 'set', 'dev', nsDev, 'up'])
    for (const a of host) await ip(['address', 'add', `${a}/24`, 'dev', hostDev])
    await ip(['link', 'set', 'dev', hostDev, 'up'])
    interrupted()
    // This process talks to the namespace's address only, and only over its own veth.
    const route = await ip(['-4', '-o', 'route', 'get', inside, 'from', host[0] as string])
    if (!route.includes(` dev ${hostDev} `)) throw new Error(`the host routes ${inside} as "${route.trim()}", not via ${hostDev}`)
  } catch (e) {
    await close().catch((c: Error) => process.stderr.write(`bench: ${c.message}\n`))
    throw e
  }
  return { runId, ns, hostDev, nsDev, prefix, inside, host, close }
}
