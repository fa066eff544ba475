import { createServer, type Server, type Socket } from 'node:net'
import { MallaError } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'
import type { Entry, Json, TypeName } from '../../core/types.js'
import { jsonEqual } from '../../core/order.js'
import type { ChangeEvent, Replica } from '../../replica/replica.js'
import { encodeSlice, type AsyncEntry } from '../../sync/async/state-slice.js'
import { TtlBridge } from '../../sync/async/ttl-bridge.js'
import { normalizeAddress } from '../../transport/address.js'
import { isLocal, isLoopback, type SourceLimits } from '../daemon/source-limits.js'
import { LogThrottle } from '../log.js'
import { serveAsyncConnection, syncWithAsyncPeer, type AsyncState } from './async-exchange.js'

export interface AsyncSyncOptions {
  readonly replica: Replica
  /** This node's author name. */
  readonly name: string
  readonly bleachIntervalMs: number
  /** Port to serve shared-state-async on (LibreMesh's is 3490); undefined: serve nothing, only sync out. */
  readonly port?: number
  readonly host: string
  /** Types spoken, with their update interval in seconds. */
  readonly types: ReadonlyMap<string, number>
  /** shared-state-async daemons to sync with. */
  readonly peers: ReadonlyArray<{ readonly host: string; readonly port: number }>
  readonly timeoutMs: number
  readonly log: Logger
  /** Budgets per sending address (the HTTP side's); none: unlimited. */
  readonly limits?: SourceLimits
}

/** Connections served at once, and from one address (this machine and configured peers excepted). */
const MAX_CONNECTIONS = 64
const MAX_CONNECTIONS_PER_SOURCE = 4
/** How long a served exchange may take, start to end. */
const SERVE_TIMEOUT_MS = 10_000
/** Changes arriving within this delay go to the async peers in one exchange per type. */
const PUSH_DEBOUNCE_MS = 10

/**
 * malla's end of LibreMesh's shared-state-async: serves TCP exchanges for the types it speaks, syncs each type
 * with its async peers once per update interval as a C++ node does, and also as soon as the type changes here.
 * TTLs are converted at the edge by a TtlBridge.
 */
export class AsyncSync implements AsyncState {
  readonly bridge: TtlBridge
  private readonly server: Server | undefined
  private readonly peers = new Map<string, { host: string; port: number; discovered: boolean }>()
  private readonly timers: NodeJS.Timeout[] = []
  private readonly perSource = new Map<string, number>()
  private readonly pushes = new Map<string, NodeJS.Timeout>()
  /** One exchange per type and peer at a time; a change meanwhile runs one more after it. */
  private readonly running = new Map<string, { again: boolean }>()
  private readonly throttle = new LogThrottle()
  /** Peers whose last exchange failed (said once each). */
  private readonly failing = new Set<string>()
  private unsubscribe: (() => void) | undefined
  private stopped = false

  constructor(private readonly options: AsyncSyncOptions) {
    this.bridge = new TtlBridge({ self: options.name, bleachIntervalMs: options.bleachIntervalMs })
    for (const p of options.peers) this.peers.set(peerKey(p), { ...p, discovered: false })
    if (options.port !== undefined) {
      this.server = createServer((socket) => this.serve(socket))
      this.server.maxConnections = MAX_CONNECTIONS
    }
  }

  serves(type: string): boolean {
    return this.options.types.has(type)
  }

  async stateOf(type: string): Promise<string> {
    const snap = await this.options.replica.get(type as TypeName)
    return encodeSlice(this.bridge.exportTable(type, snap.table))
  }

  async merge(type: string, slice: ReadonlyMap<string, AsyncEntry>, from: string): Promise<void> {
    const { remote, choose, ownWrites } = this.bridge.importSlice(type, slice, isLoopback(from))
    if (remote.size > 0) await this.options.replica.mergeChosen(type as TypeName, remote, choose, asyncSource(from))
    if (ownWrites.length > 0) await this.insertOwn(type as TypeName, ownWrites)
  }

  /** Writes from LibreMesh's CLI on this machine, as this node's own writes; unchanged data is left alone. */
  private async insertOwn(type: TypeName, writes: ReadonlyArray<[string, Json, number]>): Promise<void> {
    const table = (await this.options.replica.get(type)).table
    const byRounds = new Map<number, Array<[string, Json]>>()
    for (const [key, data, rounds] of writes) {
      const ours = table.get(key)
      if (ours !== undefined && ours.author === this.options.name && jsonEqual(ours.data, data) && ours.bleachTTL >= rounds) continue
      const group = byRounds.get(rounds)
      if (group) group.push([key, data])
      else byRounds.set(rounds, [[key, data]])
    }
    for (const [rounds, values] of byRounds) await this.options.replica.insert(type, values, rounds)
  }

  async start(): Promise<number | undefined> {
    this.unsubscribe = this.options.replica.on('change', (event) => this.changed(event))
    for (const [type, seconds] of this.options.types) {
      this.timers.push(setInterval(() => this.syncType(type), seconds * 1000))
    }
    if (this.server === undefined) return undefined
    const server = this.server
    const { port, host } = this.options
    await new Promise<void>((resolve, reject) => {
      const failed = (e: NodeJS.ErrnoException) => {
        if (e.code === 'EADDRINUSE') reject(new MallaError('BUSY', `--async-port ${port} on ${host} is in use (shared-state-async running?): choose another`, { cause: e }))
        else if (e.code === 'EACCES') reject(new MallaError('FORBIDDEN', `--async-port ${port} needs privileges this process has not`, { cause: e }))
        else reject(e)
      }
      server.once('error', failed)
      server.listen(port, host, () => {
        server.off('error', failed)
        resolve()
      })
    })
    const address = server.address()
    return typeof address === 'object' && address !== null ? address.port : undefined
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.unsubscribe?.()
    for (const t of this.timers) clearInterval(t)
    for (const t of this.pushes.values()) clearTimeout(t)
    if (this.server) await new Promise<void>((resolve) => this.server?.close(() => resolve()))
  }

  /** A neighbour found on a link (ff02::1): it may run shared-state-async on the same port. */
  addPeer(host: string, port: number): void {
    const key = peerKey({ host, port })
    if (!this.peers.has(key)) this.peers.set(key, { host, port, discovered: true })
  }

  removePeer(host: string, port: number): void {
    const key = peerKey({ host, port })
    if (this.peers.get(key)?.discovered) {
      this.peers.delete(key)
      this.failing.delete(key)
    }
  }

  isPeerAddress(address: string): boolean {
    const a = normalizeAddress(address)
    for (const p of this.peers.values()) if (normalizeAddress(p.host) === a) return true
    return false
  }

  /** Syncs `type` with every async peer now but the one named by `except` (a replica source); failures are logged. */
  async syncType(type: string, except?: string): Promise<void> {
    await Promise.all([...this.peers.values()].filter((p) => asyncSource(p.host) !== except).map((p) => this.syncOne(type, p)))
  }

  private async syncOne(type: string, peer: { host: string; port: number }): Promise<void> {
    const key = `${type} ${peerKey(peer)}`
    const busy = this.running.get(key)
    if (busy) {
      busy.again = true
      return
    }
    const state = { again: false }
    this.running.set(key, state)
    try {
      do {
        state.again = false
        if (this.stopped) break
        try {
          await syncWithAsyncPeer(type, this, { ...peer, timeoutMs: this.options.timeoutMs })
          if (this.failing.delete(peerKey(peer))) this.options.log.info('shared-state-async sync works again', { peer: peerKey(peer) })
        } catch (e) {
          // A neighbour that runs no shared-state-async (a Lua router found on the link) fails every interval:
          // said once, until it works.
          const first = !this.failing.has(peerKey(peer))
          if (first && this.failing.size < 1024) this.failing.add(peerKey(peer))
          this.options.log[first ? 'warn' : 'debug']('shared-state-async sync failed', { type, peer: peerKey(peer), error: (e as Error).message })
        }
      } while (state.again)
    } finally {
      this.running.delete(key)
    }
  }

  /** A change to a type spoken here goes to the async peers at once, but not back to the one it came from. */
  private changed(event: ChangeEvent): void {
    if (event.flavour !== 'ttl' || !this.serves(event.type) || this.stopped) return
    for (const key of event.keys) this.bridge.observe(event.type, key, event.table.get(key) as Entry | undefined)
    const sources = new Set(event.keys.map((k) => event.sources?.get(k)))
    const except = sources.size === 1 ? [...sources][0] : undefined
    const type = event.type
    if (this.pushes.has(type)) return
    this.pushes.set(
      type,
      setTimeout(() => {
        this.pushes.delete(type)
        void this.syncType(type, except)
      }, PUSH_DEBOUNCE_MS),
    )
  }

  private serve(socket: Socket): void {
    const address = normalizeAddress(socket.remoteAddress ?? 'unknown')
    const trusted = isLocal(socket) || this.isPeerAddress(address)
    const n = (this.perSource.get(address) ?? 0) + 1
    if (!trusted && n > MAX_CONNECTIONS_PER_SOURCE) {
      socket.destroy()
      return
    }
    this.perSource.set(address, n)
    socket.setNoDelay(true)
    socket.on('error', () => {})
    let ticket: ReturnType<SourceLimits['admit']> | undefined
    socket.once('close', () => {
      ticket?.end()
      const left = (this.perSource.get(address) ?? 1) - 1
      if (left > 0) this.perSource.set(address, left)
      else this.perSource.delete(address)
    })
    try {
      ticket = this.options.limits?.admit(address, isLocal(socket))
    } catch {
      socket.destroy()
      return
    }
    serveAsyncConnection(socket, this, { timeoutMs: SERVE_TIMEOUT_MS, charge: ticket?.charge })
      .then((o) => ticket?.debit(o.sentBytes))
      .catch((e: Error) => {
        socket.destroy()
        const line = this.throttle.allow(address)
        if (line.ok) this.options.log.warn('shared-state-async exchange refused', { from: address, error: e.message.slice(0, 300), earlierNotLogged: line.held || undefined })
      })
  }
}

function peerKey(p: { host: string; port: number }): string {
  return `${p.host.includes(':') ? `[${p.host}]` : p.host}:${p.port}`
}

/** The replica's source id for entries that came from the async peer at `address`. */
export function asyncSource(address: string): string {
  return `async:${normalizeAddress(address)}`
}
