import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { addNamespace, deleteNamespace, ip, listNamespaces, namespacePids, sysctl, waitLinkLocal } from '../../src/node/lab/netns.js'
import { CLI, runBounded, type CliResult } from '../helpers/processes.js'

type TestContext = { after(fn: () => unknown): void }

/**
 * Network namespaces need root on Linux. The test suite runs as root (CI does); elsewhere these tests fail
 * saying why, rather than pass without having run.
 */
export function needsRoot(_t: TestContext): boolean {
  if (process.platform === 'linux' && process.getuid?.() === 0) return true
  throw new Error('this test needs root on Linux (it creates network namespaces): run the tests as root, as CI does')
}

export const hex = (bytes = 3): string => randomBytes(bytes).toString('hex')

/**
 * After the test, whatever happened: removes every namespace that did not exist before it (or, with
 * `includeExisting`, any) and matches `pattern`, killing what runs inside first, so a failing test leaves
 * nothing behind. Keep `pattern` to the test's own names: benchmarks and labs use the same naming.
 */
export async function namespaceGuard(t: TestContext, pattern: RegExp, options: { includeExisting?: boolean } = {}): Promise<void> {
  const before = new Set(options.includeExisting ? [] : await listNamespaces())
  t.after(async () => {
    for (const ns of await listNamespaces()) {
      if (before.has(ns) || !pattern.test(ns)) continue
      for (const pid of await namespacePids(ns).catch(() => [] as number[])) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone already
        }
      }
      await deleteNamespace(ns).catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`))
    }
  })
}

/**
 * A fresh namespace `<prefix>-<hex>` with only loopback up, removed (with whatever runs in it) after the test:
 * for a browser test whose pages, servers and WebRTC must all stay on 127.0.0.1.
 */
export async function loopbackNamespace(t: TestContext, prefix: string): Promise<string> {
  await namespaceGuard(t, new RegExp(`^${prefix}-`))
  const ns = `${prefix}-${hex()}`
  await addNamespace(ns)
  await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
  return ns
}

/** Two namespaces joined by one veth pair, IPv6 on without DAD, both ends up with their link-local address (no IPv4 at all). */
export async function linkedPair(t: TestContext, a: string, b: string, devA: string, devB: string): Promise<void> {
  await namespaceGuard(t, new RegExp(`^(${a}|${b})$`))
  for (const ns of [a, b]) {
    await ip(['netns', 'add', ns])
    await sysctl(ns, { 'net.ipv6.conf.all.disable_ipv6': 0, 'net.ipv6.conf.default.disable_ipv6': 0, 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 })
    await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
  }
  await ip(['link', 'add', devA, 'netns', a, 'type', 'veth', 'peer', 'name', devB, 'netns', b])
  for (const [ns, dev] of [[a, devA], [b, devB]] as const) {
    await sysctl(ns, { [`net.ipv6.conf.${dev}.accept_dad`]: 0 })
    await ip(['-n', ns, 'link', 'set', dev, 'up'])
  }
  await waitLinkLocal(a, devA)
  await waitLinkLocal(b, devB)
}

/** A child process whose output lines can be awaited. */
export interface Watched {
  readonly child: ChildProcess
  readonly lines: string[]
  /** Resolves with the first line (past or future) matching `pattern`; rejects after `timeoutMs` or at exit. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>
  /** Resolves once `count` lines match. */
  waitForCount(pattern: RegExp, count: number, timeoutMs?: number): Promise<string[]>
  /** Resolves with the exit status (or signal); SIGKILL after `timeoutMs`. */
  exited(timeoutMs?: number): Promise<number | string | null>
}

export function watch(child: ChildProcess, echo = Boolean(process.env.MALLA_TEST_LOG)): Watched {
  const lines: string[] = []
  const listeners = new Set<() => void>()
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line)
      if (echo) process.stderr.write(`  | ${line}\n`)
      for (const l of [...listeners]) l()
    })
  }
  let exit: number | string | null | undefined
  const exitPromise = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = signal ?? code
      for (const l of [...listeners]) l()
      resolve(exit)
    }),
  )
  const waitForCount = (pattern: RegExp, count: number, timeoutMs = 20_000) =>
    new Promise<string[]>((resolve, reject) => {
      const check = () => {
        const found = lines.filter((l) => pattern.test(l))
        if (found.length >= count) return finish(() => resolve(found))
        if (exit !== undefined) return finish(() => reject(new Error(`exited (${exit}) before ${count} lines matching ${pattern}; output:\n${lines.join('\n')}`)))
      }
      const timer = setTimeout(() => finish(() => reject(new Error(`not ${count} lines matching ${pattern} within ${timeoutMs} ms; output:\n${lines.join('\n')}`))), timeoutMs)
      const finish = (then: () => void) => {
        clearTimeout(timer)
        listeners.delete(check)
        then()
      }
      listeners.add(check)
      check()
    })
  return {
    child,
    lines,
    waitForCount,
    waitFor: async (pattern, timeoutMs) => (await waitForCount(pattern, 1, timeoutMs))[0] as string,
    exited: async (timeoutMs = 15_000) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      const r = await exitPromise
      clearTimeout(timer)
      return r
    },
  }
}

/** `malla ARGS` run inside a namespace, with `input` on stdin, bounded in time. */
export function cliIn(ns: string, args: string[], input = '', timeoutMs = 20_000): Promise<CliResult> {
  return runBounded('ip', ['netns', 'exec', ns, process.execPath, CLI, ...args], input, timeoutMs, `malla ${args.join(' ')} in ${ns}`)
}

/** A namespace joined to this (root) namespace by one veth pair, with IPv4 on both ends. */
export interface HostLink {
  readonly ns: string
  /** The namespace's address: a daemon inside listens on it. */
  readonly inside: string
  /** Addresses of this namespace's end, each a distinct sender as the namespace sees it. */
  readonly outside: readonly string[]
}

/**
 * A namespace `mh-<hex>` linked to the root namespace: the root end gets `10.213.N.1` and `.3` (two senders a
 * daemon inside tells apart, neither of them local to it), the namespace end `10.213.N.2`. Removed after the test.
 */
export async function hostLink(t: TestContext): Promise<HostLink> {
  needsRoot(t)
  const id = hex()
  const ns = `mh-${id}`
  const subnet = `10.213.${parseInt(id.slice(0, 2), 16)}`
  await namespaceGuard(t, new RegExp(`^${ns}$`))
  await ip(['netns', 'add', ns])
  await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
  const outer = `mh${id}a`
  await ip(['link', 'add', outer, 'type', 'veth', 'peer', 'name', `mh${id}b`, 'netns', ns])
  t.after(() => ip(['link', 'delete', outer]).catch(() => undefined))
  await ip(['address', 'add', `${subnet}.1/24`, 'dev', outer])
  await ip(['address', 'add', `${subnet}.3/24`, 'dev', outer])
  await ip(['-n', ns, 'address', 'add', `${subnet}.2/24`, 'dev', `mh${id}b`])
  await ip(['link', 'set', outer, 'up'])
  await ip(['-n', ns, 'link', 'set', `mh${id}b`, 'up'])
  return { ns, inside: `${subnet}.2`, outside: [`${subnet}.1`, `${subnet}.3`] }
}
