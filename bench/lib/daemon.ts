import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** The built CLI: benchmarks run the real daemon binary, as a router would (`npm run build` first). */
export const CLI_PATH = fileURLToPath(new URL('../../dist/node/cli/main.js', import.meta.url))

export interface BenchDaemon {
  readonly pid: number
  /** Base URL as the daemon logged it, e.g. `http://127.0.0.1:41234/`. */
  readonly url: string
  /** The same without the trailing slash (or, for a daemon in a network namespace, the `base` it was started with). */
  readonly base: string
  /** Every stderr line so far (the daemon keeps logging, so it is always read, or the pipe would fill and stall it). */
  readonly log: readonly string[]
  readonly child: ChildProcess
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. Safe to call twice. */
  stop(graceMs?: number): Promise<void>
}

const live = new Set<ChildProcess>()
let exitHookInstalled = false

function killLiveOnExit(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // Last resort if a benchmark dies without reaching its cleanup: never leave daemons behind.
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL')
  })
}

/**
 * Starts `malla peer --host 127.0.0.1 --port 0 ARGS...` and resolves once it logs ` listening url=`
 * (so do not pass --quiet, which hides that line). Rejects, with the log, if it exits or stays silent.
 * With `netns`, the daemon runs in that network namespace (`ip netns exec NS node ...`, which execs in place,
 * so `pid` is the daemon's), on `host` (e.g. `::`), and `base` says where this process reaches it.
 */
export async function startDaemon(
  args: readonly string[],
  options: { timeoutMs?: number; cli?: string; env?: NodeJS.ProcessEnv; netns?: string; host?: string; base?: string } = {},
): Promise<BenchDaemon> {
  const cli = options.cli ?? CLI_PATH
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`)
  killLiveOnExit()
  // A free STUN port too: bench daemons share the host, and 3478 would go to the first of them only.
  const argv = [cli, 'peer', '--host', options.host ?? '127.0.0.1', '--port', '0', '--stun-port', '0', ...args]
  const child = spawn(options.netns === undefined ? process.execPath : 'ip', options.netns === undefined ? argv : ['netns', 'exec', options.netns, process.execPath, ...argv], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: options.env ?? process.env,
  })
  live.add(child)
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      live.delete(child)
      resolve()
    })
  })
  const log: string[] = []
  let onLine: ((line: string) => void) | undefined
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    log.push(line)
    onLine?.(line)
  })
  const stop = async (graceMs = 3000): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }
  const timeoutMs = options.timeoutMs ?? 15_000
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const seen = log.find((l) => / listening url=/.test(l))
      if (seen !== undefined) return resolve(seen)
      const timer = setTimeout(() => reject(new Error(`daemon did not log " listening url=" within ${timeoutMs} ms; log:\n${log.join('\n')}`)), timeoutMs)
      onLine = (l) => {
        if (/ listening url=/.test(l)) {
          clearTimeout(timer)
          resolve(l)
        }
      }
      void exited.then(() => {
        clearTimeout(timer)
        reject(new Error(`daemon exited (${child.exitCode ?? child.signalCode}) before listening; log:\n${log.join('\n')}`))
      })
    })
    onLine = undefined
    const url = (/ listening url=(\S+)/.exec(line) as RegExpExecArray)[1] as string
    return { pid: child.pid as number, url, base: options.base ?? url.replace(/\/$/, ''), log, child, stop }
  } catch (e) {
    await stop(500)
    throw e
  }
}

export interface ProcMemory {
  /** Resident set size now, bytes. */
  readonly rss: number
  /** Peak resident set size so far, bytes. */
  readonly hwm: number
}

/** VmRSS and VmHWM of a live process, from /proc/<pid>/status (Linux). */
export async function procMemory(pid: number): Promise<ProcMemory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
    if (!m) throw new Error(`no ${field} in /proc/${pid}/status`)
    return Number(m[1]) * 1024
  }
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') }
}

/** `count` RSS readings `intervalMs` apart, in bytes. */
export async function sampleRss(pid: number, count: number, intervalMs: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(intervalMs)
    out.push((await procMemory(pid)).rss)
  }
  return out
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
