import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { MallaError } from '../../core/errors.js'
import { neighbours, type Topology } from './topology.js'

export { TOPOLOGIES, type Topology } from './topology.js'

export interface LabOptions {
  readonly routers: number
  readonly topology: Topology
  readonly basePort: number
  /** Where routers keep data; a temporary directory (removed at exit) when absent. */
  readonly dataDir?: string
  readonly bleachIntervalMs?: number
  readonly syncIntervalMs?: number
  readonly verbose: boolean
  /** How long a router may take to start listening. */
  readonly startTimeoutMs?: number
}

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))

/**
 * `malla lab`: N real daemon processes on 127.0.0.1, each one's `--peer` list its neighbours in the
 * topology. Prints `router <name> <url>` per router once it listens, then runs until SIGINT/SIGTERM,
 * when it stops every router (and removes its temporary data).
 */
export async function runLab(options: LabOptions): Promise<void> {
  const root = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'malla-lab-')))
  const children: ChildProcess[] = []
  let stopping = false
  const stopAll = async () => {
    stopping = true
    await Promise.all(children.map((c) => stopChild(c)))
    if (options.dataDir === undefined) await rm(root, { recursive: true, force: true })
  }
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  try {
    const names = Array.from({ length: options.routers }, (_, i) => `r${i + 1}`)
    const ports = names.map((_, i) => options.basePort + i)
    const links = neighbours(options.routers, options.topology)
    const started = names.map(async (name, i) => {
      const dir = join(root, name)
      await mkdir(dir, { recursive: true })
      const args = [CLI, 'peer', '--name', name, '--host', '127.0.0.1', '--port', String(ports[i]), '--data', dir]
      for (const j of links[i] ?? []) args.push('--peer', `http://127.0.0.1:${ports[j]}`)
      if (options.bleachIntervalMs) args.push('--bleach-interval', String(options.bleachIntervalMs / 1000))
      if (options.syncIntervalMs) args.push('--sync-interval', String(options.syncIntervalMs / 1000))
      if (options.verbose) args.push('--verbose')
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'pipe'] })
      children.push(child)
      child.on('exit', (code, signal) => {
        if (!stopping) process.stderr.write(`lab: router ${name} exited (${signal ?? code})\n`)
      })
      return waitListening(child, options.startTimeoutMs ?? 15_000)
    })
    const urls = await Promise.all(started)
    urls.forEach((url, i) => process.stdout.write(`router ${names[i]} ${url}\n`))
    process.stderr.write(`lab: ${options.routers} routers, ${options.topology}; Ctrl-C stops them\n`)
    await stopped
  } finally {
    await stopAll()
  }
}

/** Forwards a router's log and resolves with its URL once it logs `listening`. */
function waitListening(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new MallaError('PEER', `a router did not start within ${timeoutMs} ms`)), timeoutMs)
    const lines = createInterface({ input: child.stderr! })
    lines.on('line', (line) => {
      process.stderr.write(line + '\n')
      const m = / listening url=(\S+)/.exec(line)
      if (m) {
        clearTimeout(timer)
        resolve(m[1] as string)
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new MallaError('PEER', `a router exited before listening (status ${code})`))
    })
  })
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000)
    child.once('exit', () => {
      clearTimeout(kill)
      resolve()
    })
    child.kill('SIGTERM')
  })
}
