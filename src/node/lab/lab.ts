import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { openTheApp, waitListening, stopChild } from './children.js'
import { adjacency, namedGraph, type LabGraph, type Topology } from './topology.js'

export { TOPOLOGIES, type LabGraph, type Topology } from './topology.js'

export interface LabOptions {
  readonly routers: number
  readonly topology: Topology
  /** Seed of the random topology. */
  readonly seed?: number
  /** Routers and links from a file (`--topology-file`); replaces `routers` and `topology`. */
  readonly graph?: LabGraph
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
    const graph = options.graph ?? namedGraph(options.routers, options.topology, options.seed)
    const names = graph.names
    const ports = names.map((_, i) => options.basePort + i)
    const links = adjacency(graph)
    const started = names.map(async (name, i) => {
      const dir = join(root, name)
      await mkdir(dir, { recursive: true })
      // The routers share one address, so each takes a free STUN port (in its /malla/v1/info) rather than all fighting for 3478.
      const args = [CLI, 'peer', '--name', name, '--host', '127.0.0.1', '--port', String(ports[i]), '--stun-port', '0', '--data', dir]
      for (const j of links[i] ?? []) args.push('--peer', `http://127.0.0.1:${ports[j]}`)
      if (options.bleachIntervalMs) args.push('--bleach-interval', String(options.bleachIntervalMs / 1000))
      if (options.syncIntervalMs) args.push('--sync-interval', String(options.syncIntervalMs / 1000))
      if (options.verbose) args.push('--verbose')
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'pipe'] })
      children.push(child)
      child.on('exit', (code, signal) => {
        if (!stopping) process.stderr.write(`lab: router ${name} exited (${signal ?? code})\n`)
      })
      return waitListening(child, options.startTimeoutMs ?? 15_000, `router ${name}`, undefined, options.verbose)
    })
    const urls = await Promise.all(started)
    urls.forEach((url, i) => process.stdout.write(`router ${names[i]} ${url}\n`))
    process.stderr.write(openTheApp(urls))
    process.stderr.write(`lab: ${names.length} routers, ${options.graph ? `${graph.links.length} links from a file` : options.topology}; Ctrl-C stops them\n`)
    await stopped
  } finally {
    await stopAll()
  }
}
