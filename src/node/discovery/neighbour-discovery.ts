import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import type { Logger } from '../../core/log.js'
import { candidates, neighbourBase, ownAddresses, type Responder } from './ping-output.js'

export interface DiscoveryOptions {
  /** Interfaces to probe, e.g. `br-lan`, `bat0`, a veth. */
  readonly interfaces: readonly string[]
  /** Port the neighbours' daemons listen on. */
  readonly port: number
  /** Time between probes; LibreMesh caches its candidate list for 30 s. */
  readonly intervalMs: number
  /** A neighbour not seen for this many probes in a row is forgotten. */
  readonly missesBeforeRemoval?: number
  /** A ping still running after this long is killed (its output so far is still used). */
  readonly probeTimeoutMs?: number
  /** The ping program (iputils-ping); `ping` from PATH by default. */
  readonly pingCommand?: string
  readonly add: (base: string) => void
  readonly remove: (base: string) => void
  readonly log: Logger
  /** This host's addresses, to drop from the responders (default: `os.networkInterfaces()` at each probe). */
  readonly ownAddresses?: () => ReadonlySet<string>
}

/** What one ping on one interface gave. */
export interface ProbeResult {
  readonly iface: string
  /** Everything ping printed on stdout, parsed even after a failure or a timeout. */
  readonly output: string
  /** Why the probe failed, if it did (no such interface, no ping binary, killed after the timeout...). */
  readonly error: string | undefined
}

export const DISCOVERY_DEFAULTS = { intervalMs: 30_000, missesBeforeRemoval: 3, probeTimeoutMs: 5_000 } as const

/**
 * LibreMesh's neighbour discovery (`shared-state-get_candidates_neigh`): once at start and then every
 * interval, ping the IPv6 all-nodes group `ff02::1` on each interface; every host that answers and is not
 * this one is a neighbour, reached at `http://[fe80::...%25IFACE]:PORT`. Neighbours missing from
 * `missesBeforeRemoval` probes in a row are removed. Failures (no `ping`, an unknown interface) are logged
 * once per interface and change of reason, never thrown: the daemon keeps serving its other peers.
 */
export class NeighbourDiscovery {
  private readonly misses = new Map<string, number>()
  private readonly lastError = new Map<string, string | undefined>()
  private readonly running = new Set<ReturnType<typeof spawn>>()
  private timer: ReturnType<typeof setTimeout> | undefined
  private round: Promise<void> | undefined
  private stopped = false
  private rounds = 0

  constructor(private readonly options: DiscoveryOptions) {}

  /** Base URLs currently known through discovery. */
  known(): string[] {
    return [...this.misses.keys()]
  }

  start(): void {
    const { log, interfaces, intervalMs, port } = this.options
    for (const iface of interfaces) {
      if (existsSync('/sys/class/net') && !existsSync(`/sys/class/net/${iface}`)) {
        log.warn('discovery interface not found (probed anyway, in case it appears)', { iface })
      }
    }
    log.info('discovery started', { interfaces: interfaces.join(','), port, every: `${intervalMs / 1000}s` })
    const loop = () => {
      if (this.stopped) return
      this.round = this.probeAll().finally(() => {
        this.round = undefined
        if (!this.stopped) this.timer = setTimeout(loop, intervalMs)
      })
    }
    loop()
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    for (const child of this.running) child.kill('SIGKILL')
    await this.round
  }

  /** One probe of every interface; adds the new responders and removes the neighbours missing too long. */
  async probeAll(): Promise<void> {
    const { log, port, add, remove } = this.options
    const ownNow = () => this.options.ownAddresses?.() ?? ownAddresses(networkInterfaces())
    // This host's addresses from before and after the probe: an interface going away during the probe has
    // already left the list after it, though its address may have answered.
    const ownBefore = ownNow()
    const results = await Promise.all(this.options.interfaces.map((iface) => this.probe(iface)))
    if (this.stopped) return
    this.rounds++
    const own = new Set([...ownBefore, ...ownNow()])
    const seen = new Map<string, Responder>()
    for (const r of results) {
      this.report(r)
      for (const c of candidates(r.output, r.iface, own)) {
        const base = neighbourBase(c, port)
        if (!seen.has(base)) seen.set(base, c)
      }
    }
    for (const base of seen.keys()) {
      if (!this.misses.has(base)) {
        log.debug('neighbour discovered', { peer: base })
        add(base)
      }
      this.misses.set(base, 0)
    }
    const limit = this.options.missesBeforeRemoval ?? DISCOVERY_DEFAULTS.missesBeforeRemoval
    for (const [base, n] of this.misses) {
      if (seen.has(base)) continue
      if (n + 1 >= limit) {
        this.misses.delete(base)
        log.info('neighbour gone', { peer: base, probes: limit })
        remove(base)
      } else {
        this.misses.set(base, n + 1)
      }
    }
    // The first probe at info level: it tells when the neighbours present at start are known (the netns lab waits for it).
    if (this.rounds === 1) log.info('first discovery probe done', { neighbours: seen.size })
    else log.debug('discovery probe', { round: this.rounds, neighbours: seen.size })
  }

  /** Logs a probe's failure once per interface and reason, and its recovery. */
  private report(r: ProbeResult): void {
    const before = this.lastError.get(r.iface)
    if (r.error === before) return
    this.lastError.set(r.iface, r.error)
    if (r.error !== undefined) {
      // A missing ping breaks every probe on every interface: an error, not a warning.
      const level = / not found: /.test(r.error) ? 'error' : 'warn'
      this.options.log[level]('discovery probe failed', { iface: r.iface, error: r.error })
    }
    else if (before !== undefined) this.options.log.info('discovery probe works again', { iface: r.iface })
  }

  /** `ping -6 -c 2 -i 0.2 -w 3 -I IFACE ff02::1`, bounded by a timeout; never rejects. */
  probe(iface: string): Promise<ProbeResult> {
    const command = this.options.pingCommand ?? 'ping'
    const timeoutMs = this.options.probeTimeoutMs ?? DISCOVERY_DEFAULTS.probeTimeoutMs
    return new Promise((resolve) => {
      let stdout = ''
      let stderr = ''
      let timedOut = false
      let settled = false
      const done = (error: string | undefined) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        this.running.delete(child)
        resolve({ iface, output: stdout, error })
      }
      const child = spawn(command, ['-6', '-n', '-c', '2', '-i', '0.2', '-w', '3', '-I', iface, 'ff02::1'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C' },
      })
      this.running.add(child)
      const timer = setTimeout(() => {
        timedOut = true
        child.kill('SIGKILL')
      }, timeoutMs)
      child.stdout.on('data', (d: Buffer) => {
        if (stdout.length < 1_000_000) stdout += d.toString('utf8')
      })
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 10_000) stderr += d.toString('utf8')
      })
      child.on('error', (e: NodeJS.ErrnoException) => {
        done(e.code === 'ENOENT' ? `${command} not found: install iputils-ping (ping -6 with -I and float -i)` : `${command}: ${e.message}`)
      })
      child.on('close', (code, signal) => {
        if (timedOut) return done(`${command} did not finish within ${timeoutMs} ms and was killed`)
        if (this.stopped && signal !== null) return done(undefined)
        // iputils: 0 some answer, 1 no answer before the deadline (not an error here: an empty link), 2 error.
        if (code === 0 || code === 1) return done(undefined)
        const reason = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^ping: Warning/i.test(l)).join('; ')
        done(`${command} -I ${iface} ff02::1 exited with ${signal ?? code}${reason ? `: ${reason}` : ''}`)
      })
    })
  }
}
