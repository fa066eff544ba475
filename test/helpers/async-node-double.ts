import { createServer, type Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import { jsonEqual } from '../../src/core/order.js'
import type { Json } from '../../src/core/types.js'
import { serveAsyncConnection, syncWithAsyncPeer, type AsyncState } from '../../src/node/async/async-exchange.js'
import { encodeSlice, type AsyncEntry } from '../../src/sync/async/state-slice.js'

/**
 * A stand-in for a LibreMesh node running the C++ shared-state-async, whose build needs the internet (it
 * fetches libretroshare). It acts out `src/sharedstate.cc` and `app/shared_state_cli.cc` of
 * libremesh/shared-state-async: a merge that takes a received entry on a TTL greater *or equal*, except the
 * node's own entries coming back from a remote peer with a higher TTL; a bleach every second; an insert at
 * `ttl + update interval + 1` seconds; a sync of each type with every peer when the wall clock's seconds are a
 * multiple of its update interval; hooks left out. The wire is malla's own implementation, held to golden
 * frames in test/unit/async-wire.test.ts.
 */
export interface DoubleType {
  readonly updateInterval: number
  readonly ttl: number
}

export class AsyncNodeDouble implements AsyncState {
  readonly states = new Map<string, Map<string, AsyncEntry>>()
  readonly peers: Array<{ host: string; port: number }> = []
  /** Called with a type and its keys whenever a merge changes data (the C++ "significant" changes). */
  onChange: ((type: string, keys: string[]) => void) | undefined
  /** The last failed sync with a peer, for a test or benchmark to show. */
  lastError: string | undefined
  private server: Server | undefined
  private timer: NodeJS.Timeout | undefined
  private lastBleach = Date.now()
  private lastTick = Math.floor(Date.now() / 1000)

  constructor(
    readonly name: string,
    readonly types: ReadonlyMap<string, DoubleType>,
    /** Treat every peer as remote, although tests run on loopback (the C++ daemon trusts loopback as its CLI). */
    private readonly loopbackIsRemote = true,
  ) {
    for (const t of types.keys()) this.states.set(t, new Map())
  }

  serves(type: string): boolean {
    return this.types.has(type)
  }

  async stateOf(type: string): Promise<string> {
    return encodeSlice(this.states.get(type) ?? new Map())
  }

  async merge(type: string, slice: ReadonlyMap<string, AsyncEntry>, from: string): Promise<void> {
    const state = this.states.get(type)
    if (!state) throw new Error(`unknown type ${type}`)
    const remote = this.loopbackIsRemote || !/^(::ffff:)?127\.|^::1$/.test(from)
    const changed: string[] = []
    for (const [key, theirs] of slice) {
      const ours = state.get(key)
      if (ours === undefined) {
        state.set(key, theirs)
        changed.push(key)
        continue
      }
      if (remote && ours.author === this.name && theirs.ttl > ours.ttl) continue
      if (theirs.ttl >= ours.ttl) {
        if (!jsonEqual(ours.data, theirs.data)) changed.push(key)
        state.set(key, theirs)
      }
    }
    if (changed.length > 0) this.onChange?.(type, changed)
  }

  /** `shared-state-async insert TYPE` with `{key: data}` on stdin. */
  insert(type: string, values: Record<string, Json>): void {
    const conf = this.types.get(type)
    const state = this.states.get(type)
    if (!conf || !state) throw new Error(`unknown type ${type}`)
    for (const [key, data] of Object.entries(values)) state.set(key, { author: this.name, ttl: conf.ttl + conf.updateInterval + 1, data })
  }

  async start(host = '127.0.0.1', port = 0): Promise<number> {
    const server = createServer((socket) => {
      socket.on('error', () => {})
      serveAsyncConnection(socket, this, { timeoutMs: 10_000 }).catch(() => socket.destroy())
    })
    this.server = server
    await new Promise<void>((resolve) => server.listen(port, host, resolve))
    this.timer = setInterval(() => this.tick(), 100)
    return (server.address() as AddressInfo).port
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    if (this.server) await new Promise<void>((resolve) => this.server?.close(() => resolve()))
  }

  /** The C++ loops, checked ten times a second: bleach by the whole seconds elapsed, sync on interval seconds. */
  private tick(): void {
    const now = Date.now()
    const elapsed = Math.floor((now - this.lastBleach) / 1000)
    if (elapsed >= 1) {
      this.lastBleach += elapsed * 1000
      for (const state of this.states.values()) {
        for (const [key, e] of state) {
          if (e.ttl <= elapsed) state.delete(key)
          else state.set(key, { ...e, ttl: e.ttl - elapsed })
        }
      }
    }
    const second = Math.floor(now / 1000)
    if (second === this.lastTick) return
    this.lastTick = second
    for (const [type, conf] of this.types) {
      if (second % conf.updateInterval !== 0) continue
      for (const peer of this.peers) void syncWithAsyncPeer(type, this, { ...peer, timeoutMs: 5000 }).catch((e: Error) => (this.lastError = `${peer.host}:${peer.port} ${e.message}`))
    }
  }
}
