import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { MallaError } from '../../core/errors.js'

/**
 * Forwards a router's warnings and errors (every line when `verbose`) to this process's stderr and resolves
 * with its URL once it logs `listening` (and, when `readyPattern` is given, a line matching it as well).
 * A lab's terminal shows its URLs and what went wrong, not each router's routine.
 */
export async function waitListening(child: ChildProcess, timeoutMs: number, name = 'a router', readyPattern?: RegExp, verbose = false): Promise<string> {
  return (await waitReady(child, timeoutMs, name, readyPattern, verbose)).url
}

/** As `waitListening`, and also gives the line that matched `readyPattern`. */
export function waitReady(child: ChildProcess, timeoutMs: number, name: string, readyPattern?: RegExp, verbose = false): Promise<{ url: string; ready: string | undefined }> {
  return new Promise((resolve, reject) => {
    let url: string | undefined
    let ready: string | undefined
    const isReady = () => readyPattern === undefined || ready !== undefined
    const timer = setTimeout(
      () => reject(new MallaError('PEER', `${name} did not ${url === undefined ? 'start' : `log ${String(readyPattern)}`} within ${timeoutMs} ms`)),
      timeoutMs,
    )
    const lines = createInterface({ input: child.stderr! })
    lines.on('line', (line) => {
      if (verbose || !/^\S+ (?:info|debug)\b/.test(line)) process.stderr.write(line + '\n')
      const m = / listening url=(\S+)/.exec(line)
      if (m) url = m[1] as string
      if (ready === undefined && readyPattern?.test(line)) ready = line
      if (url !== undefined && isReady()) {
        clearTimeout(timer)
        resolve({ url, ready })
      }
    })
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(new MallaError('PEER', `${name} could not be started: ${e.message}`))
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new MallaError('PEER', `${name} exited before ${url === undefined ? 'listening' : 'it was ready'} (status ${signal ?? code})`))
    })
  })
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve()
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs)
    child.once('exit', () => {
      clearTimeout(kill)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/** The line a lab ends its start with: where to point a browser. */
export function openTheApp(urls: readonly string[]): string {
  const two = urls.slice(0, 2).join(' and ')
  return `lab: open ${two} in ${urls.length > 1 ? 'two browser windows' : 'a browser'} to chat and send files (the routers log only warnings and errors; --verbose shows everything)\n`
}
