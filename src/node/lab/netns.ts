import { execFile, spawnSync } from 'node:child_process'
import { MallaError } from '../../core/errors.js'

/**
 * Network-namespace plumbing for the lab, over iproute2's `ip` (and procps' `sysctl` inside a namespace).
 * Every command runs with execFile (no shell), is killed after a timeout, and fails with an error that
 * shows the command line and what it printed.
 */

export const COMMAND_TIMEOUT_MS = 10_000

export class CommandError extends MallaError {
  constructor(
    readonly command: string,
    reason: string,
  ) {
    super('STORAGE', `\`${command}\` failed: ${reason}`)
    this.name = 'CommandError'
  }
}

const INSTALL_HINT: Record<string, string> = { ip: 'install iproute2', tc: 'install iproute2', sysctl: 'install procps', ping: 'install iputils-ping' }

/** Runs a program, resolves with its stdout; rejects with a CommandError naming the command. */
export function run(file: string, args: readonly string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
  const command = [file, ...args].join(' ')
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' } }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout)
      const e = error as NodeJS.ErrnoException & { killed?: boolean; code?: unknown }
      // A program missing inside `ip netns exec` shows as exit status 255 with "exec of ... failed" on stderr.
      const missing = e.code === 'ENOENT' ? file : /exec of "([^"]+)" failed: No such file/.exec(stderr)?.[1]
      if (missing !== undefined) {
        const hint = INSTALL_HINT[missing.replace(/^.*\//, '')]
        return reject(new CommandError(command, `${missing} not found${hint ? ` (${hint})` : ''}`))
      }
      if (e.killed) return reject(new CommandError(command, `no answer within ${timeoutMs} ms`))
      const text = stderr.trim() || stdout.trim() || e.message
      reject(new CommandError(command, `exit status ${String(e.code)}: ${text.split('\n').slice(0, 5).join('; ')}`))
    })
  })
}

export const ip = (args: readonly string[], timeoutMs?: number): Promise<string> => run('ip', args, timeoutMs)

/** Names of the network namespaces `ip netns` knows. */
export async function listNamespaces(): Promise<string[]> {
  const out = await ip(['netns', 'list'])
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '')
}

export async function addNamespace(ns: string): Promise<void> {
  await ip(['netns', 'add', ns])
}

export async function deleteNamespace(ns: string): Promise<void> {
  await ip(['netns', 'delete', ns])
}

/** Process ids running in a namespace. */
export async function namespacePids(ns: string): Promise<number[]> {
  const out = await ip(['netns', 'pids', ns])
  return out
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0)
}

/** `ip netns exec NS PROGRAM ARGS...` */
export function execIn(ns: string, program: string, args: readonly string[], timeoutMs?: number): Promise<string> {
  return ip(['netns', 'exec', ns, program, ...args], timeoutMs)
}

/** Sets kernel parameters inside a namespace (`sysctl -w`), e.g. `net.ipv6.conf.all.disable_ipv6=0`. */
export async function sysctl(ns: string, settings: Record<string, string | number>): Promise<void> {
  await execIn(ns, 'sysctl', ['-q', '-w', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)])
}

/** A veth pair with each end created directly in its namespace (so nothing is ever left in the host's). */
export async function addVethPair(a: { ns: string; dev: string }, b: { ns: string; dev: string }): Promise<void> {
  await ip(['link', 'add', a.dev, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.dev, 'netns', b.ns])
}

export async function linkUp(ns: string, dev: string): Promise<void> {
  await ip(['-n', ns, 'link', 'set', 'dev', dev, 'up'])
}

export async function addAddress(ns: string, dev: string, cidr: string): Promise<void> {
  await ip(['-n', ns, 'address', 'add', cidr, 'dev', dev])
}

export async function addDefaultRoute(ns: string, via: string, dev: string): Promise<void> {
  await ip(['-n', ns, 'route', 'add', 'default', 'via', via, 'dev', dev])
}

/**
 * Waits until `dev` has a usable IPv6 link-local address (present and not tentative). After a veth comes
 * up, the kernel assigns it only once it sees the carrier, which can take up to a second; a ping to
 * ff02::1 before that finds nobody.
 */
export async function waitLinkLocal(ns: string, dev: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const out = await ip(['-n', ns, '-6', '-o', 'address', 'show', 'dev', dev, 'scope', 'link'])
    const line = out.split('\n').find((l) => / inet6 fe80:/.test(l) && !/tentative|dadfailed/.test(l))
    if (line) return (/ inet6 (\S+)/.exec(line) as RegExpExecArray)[1] as string
    if (Date.now() > deadline) throw new CommandError(`ip -n ${ns} -6 address show dev ${dev}`, `no IPv6 link-local address within ${timeoutMs} ms (is IPv6 disabled?)`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Interface names in a namespace (the host's when `ns` is undefined). */
export async function listLinks(ns?: string): Promise<string[]> {
  const out = await ip([...(ns === undefined ? [] : ['-n', ns]), '-o', 'link', 'show'])
  const names: string[] = []
  for (const line of out.split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)(?:@[^:\s]+)?:/.exec(line)
    if (m) names.push(m[1] as string)
  }
  return names
}

export async function deleteLink(dev: string, ns?: string): Promise<void> {
  await ip([...(ns === undefined ? [] : ['-n', ns]), 'link', 'delete', 'dev', dev])
}

/** For a process 'exit' handler, where nothing asynchronous runs: delete namespaces synchronously. */
export function deleteNamespacesSync(namespaces: readonly string[], timeoutMs = 5000): string[] {
  const failed: string[] = []
  for (const ns of namespaces) {
    const r = spawnSync('ip', ['netns', 'delete', ns], { timeout: timeoutMs, killSignal: 'SIGKILL', stdio: ['ignore', 'ignore', 'pipe'] })
    if (r.status !== 0) failed.push(`${ns}: ${r.error?.message ?? r.stderr?.toString().trim() ?? `status ${r.status}`}`)
  }
  return failed
}

/** Runs `fn` over `items`, at most `limit` at a time; rejects with the first error after all have settled. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  let firstError: unknown
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      try {
        results[i] = await fn(items[i] as T, i)
      } catch (e) {
        firstError ??= e
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (firstError !== undefined) throw firstError
  return results
}
