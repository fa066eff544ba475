import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { freePorts } from '../../bench/lib/ports.js'

/** The built CLI: tests run the real `malla` binary, as a user would. */
export const CLI = fileURLToPath(new URL('../../dist/node/cli/main.js', import.meta.url))

export async function tempDir(t: { after(fn: () => unknown): void }, prefix = 'malla-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  // Hooks run in the order they were added, so a daemon started on this directory is stopped only after
  // this: a file it writes meanwhile (ENOTEMPTY) is removed on a retry.
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }))
  return dir
}

export interface RunningDaemon {
  readonly child: ChildProcess
  readonly url: string
  readonly base: string
  /** Everything the daemon logged so far. */
  readonly log: string[]
  /** Resolves with the first log line matching `pattern` (past or future), rejects after `timeoutMs`. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>
  stop(signal?: NodeJS.Signals): Promise<void>
}

/**
 * Starts `malla peer` on 127.0.0.1 with ephemeral HTTP and STUN ports and resolves once it listens.
 * The process is killed when the test ends, whatever happened.
 */
export async function startDaemon(
  t: { after(fn: () => unknown): void },
  args: string[],
  options: { timeoutMs?: number; netns?: string; host?: string; cli?: string; cwd?: string } = {},
): Promise<RunningDaemon> {
  // A free STUN port too: test daemons share the host with each other and with other runs (later args override it).
  const argv = [options.cli ?? CLI, 'peer', '--host', options.host ?? '127.0.0.1', '--port', '0', '--stun-port', '0', ...args]
  // `ip netns exec` execs node in place: the child's pid is the daemon's.
  const child = options.netns ? spawn('ip', ['netns', 'exec', options.netns, process.execPath, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'], cwd: options.cwd })
  const log: string[] = []
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = []
  createInterface({ input: child.stderr! }).on('line', (line) => {
    log.push(line)
    if (process.env.MALLA_TEST_LOG) process.stderr.write(`  | ${line}\n`)
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
  t.after(() => stop('SIGKILL'))
  const waitForLog = (pattern: RegExp, timeoutMs = 10_000) => {
    const seen = log.find((l) => pattern.test(l))
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms; log:\n${log.join('\n')}`)), timeoutMs)
      waiters.push({ pattern, resolve: (l) => (clearTimeout(timer), resolve(l)) })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`daemon exited (${code}) before logging ${pattern}; log:\n${log.join('\n')}`))
      })
    })
  }
  const line = await waitForLog(/ listening url=/, options.timeoutMs ?? 15_000)
  const url = (/ listening url=(\S+)/.exec(line) as RegExpExecArray)[1] as string
  return { child, url, base: url.replace(/\/$/, ''), log, waitForLog, stop }
}

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the CLI with `input` on stdin (or none), bounded in time. */
export function runCli(args: string[], input?: string, timeoutMs = 30_000): Promise<CliResult> {
  return runBounded(process.execPath, [CLI, ...args], input ?? '', timeoutMs, `malla ${args.join(' ')}`)
}

/** Runs a command to completion with `input` on stdin, killing it (and failing) after `timeoutMs`. */
export function runBounded(command: string, args: string[], input: string, timeoutMs: number, what: string, cwd?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${what} did not finish within ${timeoutMs} ms`))
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
    // A command that exits without reading its stdin (gpg --verify does) closes the pipe under us: not an error.
    child.stdin.on('error', () => {})
    child.stdin.end(input)
  })
}

/** POSTs raw bytes to a URL and returns status, headers and body text (no client-side interpretation). */
export async function post(url: string, body: string | Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(url, { method: 'POST', body: body as BodyInit, headers, signal: AbortSignal.timeout(10_000) })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

/**
 * A loopback TCP port nothing listens on right now (to start a daemon on a port it keeps, or to refuse), below the
 * kernel's ephemeral range: a daemon restarted on it cannot find it taken by a client socket, such as its
 * neighbour's reconnect to it, which the kernel may give that very port (a connection to itself) while it is down.
 */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0] as number
}
