import { MallaError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { silentLogger } from '../core/log.js'
import type { TypeName } from '../core/types.js'

/** Where a malla daemon takes pushes as WebSocket frames (docs/protocol.md §10.1). */
export const PUSH_SOCKET_PATH = '/malla/v1/push'

/** The part of the WHATWG WebSocket this uses: a browser's own, or `ws`'s in Node. */
export interface SocketLike {
  readonly readyState: number
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { readonly data: unknown }) => void) | null
  onclose: ((event: unknown) => void) | null
  onerror: ((event: unknown) => void) | null
  send(data: string): void
  close(): void
}

export type SocketFactory = (url: string) => SocketLike

/** The daemon's answer to one frame: the corrections (§9.2), or why it refused (`id` null: the frame had none). */
export type PushReply = { readonly id: number; readonly entries: Record<string, unknown> } | { readonly id: number | null; readonly error: { readonly code: string; readonly message: string } }

const OPEN = 1
const RECONNECT_MIN_MS = 1000
const RECONNECT_MAX_MS = 30_000

/**
 * One WebSocket to a malla router for pushes, reconnected (with backoff) until stopped. It is only a faster
 * path: whoever pushes falls back to an HTTP POST whenever it is not open or a push over it fails.
 */
export class PushSocketClient {
  private socket: SocketLike | undefined
  private nextId = 0
  private readonly pending = new Map<number, { resolve(entries: Record<string, unknown>): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> }>()
  private retryMs = RECONNECT_MIN_MS
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private stopped = false
  private readonly log: Logger

  constructor(private readonly options: { readonly base: string; readonly open: SocketFactory; readonly timeoutMs: number; readonly log?: Logger }) {
    this.log = options.log ?? silentLogger
  }

  get ready(): boolean {
    return this.socket?.readyState === OPEN
  }

  start(): void {
    if (this.stopped || this.socket) return
    let socket: SocketLike
    try {
      socket = this.options.open(socketUrl(this.options.base))
    } catch (e) {
      this.log.debug('push socket unavailable', { error: (e as Error).message })
      return this.reconnectLater()
    }
    this.socket = socket
    socket.onopen = () => {
      this.retryMs = RECONNECT_MIN_MS
    }
    socket.onmessage = (event) => this.onReply(event.data)
    socket.onerror = () => {}
    socket.onclose = () => {
      if (this.socket !== socket) return
      this.socket = undefined
      this.failAll('the push socket closed')
      this.reconnectLater()
    }
  }

  /** Sends `entries` (a serialized partial table) of `type`; resolves with the router's corrections. */
  push(type: TypeName, entries: string): Promise<Record<string, unknown>> {
    const socket = this.socket
    if (!socket || socket.readyState !== OPEN) return Promise.reject(new MallaError('PEER', 'the push socket is not open'))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new MallaError('PEER', `no answer to push ${id} within ${this.options.timeoutMs} ms`))
      }, this.options.timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      try {
        socket.send(`{"id":${id},"type":${JSON.stringify(type)},"entries":${entries}}`)
      } catch (e) {
        clearTimeout(timer)
        this.pending.delete(id)
        reject(new MallaError('PEER', `push socket send failed: ${(e as Error).message}`, { cause: e }))
      }
    })
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.retryTimer)
    const socket = this.socket
    this.socket = undefined
    this.failAll('the push socket was stopped')
    try {
      socket?.close()
    } catch {
      // Closing a socket that never opened may throw in some implementations; it is gone either way.
    }
  }

  private onReply(data: unknown): void {
    let reply: PushReply
    try {
      reply = JSON.parse(typeof data === 'string' ? data : String(data)) as PushReply
    } catch {
      return this.log.warn('push socket: an answer that is not JSON', {})
    }
    if (reply === null || typeof reply !== 'object' || typeof reply.id !== 'number') return
    const waiting = this.pending.get(reply.id)
    if (!waiting) return
    this.pending.delete(reply.id)
    clearTimeout(waiting.timer)
    if ('error' in reply) waiting.reject(new MallaError('PEER', `the router refused a push: ${reply.error?.message ?? 'no reason given'}`))
    else if (reply.entries !== null && typeof reply.entries === 'object') waiting.resolve(reply.entries)
    else waiting.reject(new MallaError('PEER', 'a push answer without entries'))
  }

  private failAll(why: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer)
      p.reject(new MallaError('PEER', why))
      this.pending.delete(id)
    }
  }

  private reconnectLater(): void {
    if (this.stopped) return
    clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => this.start(), this.retryMs)
    this.retryMs = Math.min(RECONNECT_MAX_MS, this.retryMs * 2)
  }
}

/** `http://host:port/...` → `ws://host:port/malla/v1/push` (https → wss). */
export function socketUrl(base: string): string {
  const url = new URL(PUSH_SOCKET_PATH, base.endsWith('/') ? base : `${base}/`)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  return url.href
}
