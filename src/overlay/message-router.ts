import { createNanoEvents, type Unsubscribe } from 'nanoevents'
import { badInput, MallaError } from '../core/errors.js'
import { silentLogger, type Logger } from '../core/log.js'
import type { JsonValue } from '../rtc/framed-channel.js'
import { MAX_ROUTE_BODY_CHARS, MAX_ROUTE_HOPS, ROUTE_PEER_PATTERN, type RouteFrame } from '../sync/links/channel-frames.js'
import type { ChannelLink } from '../sync/links/channel-link.js'

export interface MessageRouterOptions {
  /** This peer's id: messages `to` it are delivered here. */
  readonly id: string
  /** Hops a message may take (default 8): more than the overlay's diameter, far less than the room. */
  readonly maxHops?: number
  /** How long send() waits for the acknowledgement (default 5 s). */
  readonly ackTimeoutMs?: number
  readonly log?: Logger
}

export interface MessageRouterEvents {
  /** A message for this peer, delivered once whatever the paths it took. */
  message(from: string, body: JsonValue): void
  /** One of the overlay's own messages for this peer (directed offers and answers: overlay/direct-connect.ts). */
  signal(from: string, sig: { readonly t: string } & Record<string, unknown>): void
}

/** Message ids remembered, to deliver and forward each message once. */
const SEEN_MEMORY = 4096
/** Routed messages one connection may hand this peer per second, sustained (a burst of twice that). */
const ROUTES_PER_SECOND = 100

/**
 * Messages to any peer of the room, over the overlay's connections (docs/protocol.md §15.3): to the peer
 * itself when it is a neighbour, otherwise flooded to every connection but the one a message came in on, each
 * peer forwarding a message once (by its id) and no further than `maxHops`. The target answers each message
 * with an acknowledgement routed back the same way, so `send` resolves when the message arrived, or rejects.
 */
export class MessageRouter {
  private readonly emitter = createNanoEvents<MessageRouterEvents>()
  private readonly links = new Set<ChannelLink>()
  private readonly seen = new Set<string>()
  private readonly waiting = new Map<string, { resolve: () => void; reject: (e: MallaError) => void; timer: ReturnType<typeof setTimeout> }>()
  private readonly buckets = new WeakMap<ChannelLink, { tokens: number; at: number }>()
  private readonly log: Logger
  private next = 1
  private readonly salt = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => (b % 36).toString(36)).join('')
  /** What was dropped: over a connection's rate, past the hop bound, or seen already. */
  readonly dropped = { rate: 0, hops: 0, duplicate: 0 }

  constructor(private readonly options: MessageRouterOptions) {
    this.log = options.log ?? silentLogger
  }

  on<E extends keyof MessageRouterEvents>(event: E, listener: MessageRouterEvents[E]): Unsubscribe {
    return this.emitter.on(event, listener)
  }

  attach(link: ChannelLink): void {
    this.links.add(link)
  }

  detach(link: ChannelLink): void {
    this.links.delete(link)
  }

  /**
   * Sends `body` (JSON, at most 64 KiB of it) to peer `to`; resolves once `to` acknowledged it. Rejects with
   * BAD_INPUT for a body that cannot go, PEER when no acknowledgement came in time (the peer is not in the
   * overlay, or left; the message may still have arrived).
   */
  send(to: string, body: JsonValue): Promise<void> {
    return this.route(to, { body })
  }

  /** Sends one of the overlay's own messages (`signal` at the far end); as `send` otherwise. */
  signal(to: string, sig: { readonly t: string } & Record<string, JsonValue>): Promise<void> {
    return this.route(to, { sig })
  }

  private route(to: string, payload: { body: JsonValue } | { sig: { readonly t: string } & Record<string, JsonValue> }): Promise<void> {
    const body = 'body' in payload ? payload.body : payload.sig
    const text = JSON.stringify(body)
    if (text === undefined) return Promise.reject(badInput('this value cannot be sent as JSON'))
    if (text.length > MAX_ROUTE_BODY_CHARS) return Promise.reject(badInput(`a message over ${MAX_ROUTE_BODY_CHARS} characters of JSON; send it on a direct connection`))
    if (!ROUTE_PEER_PATTERN.test(to)) return Promise.reject(badInput(`not a peer id: ${JSON.stringify(to)}`))
    const id = this.newId()
    const ms = this.options.ackTimeoutMs ?? 5000
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id)
        reject(new MallaError('PEER', `no acknowledgement from ${to} within ${ms} ms`))
      }, ms)
      this.waiting.set(id, { resolve, reject, timer })
      this.remember(id)
      this.forward({ id, from: this.options.id, to, hops: 0, ...payload }, undefined)
    })
  }

  close(): void {
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer)
      w.reject(new MallaError('PEER', 'the room was left'))
      this.waiting.delete(id)
    }
    this.links.clear()
  }

  /** A routed frame from a connection (ChannelLink's onRoute). */
  receive(route: RouteFrame, from: ChannelLink): void {
    if (!this.allowed(from)) {
      if (this.dropped.rate++ % 1000 === 0) this.log.debug('routed messages dropped: over their connection\'s rate', { peer: from.peer, dropped: this.dropped.rate })
      return
    }
    if (this.seen.has(route.id)) {
      this.dropped.duplicate++
      return
    }
    this.remember(route.id)
    if (route.to === this.options.id) {
      if (route.ack !== undefined) {
        const w = this.waiting.get(route.ack)
        if (w && route.from !== this.options.id) {
          this.waiting.delete(route.ack)
          clearTimeout(w.timer)
          w.resolve()
        }
        return
      }
      this.forward({ id: this.newId(), from: this.options.id, to: route.from, hops: 0, ack: route.id }, undefined)
      if (route.sig !== undefined) this.emitter.emit('signal', route.from, route.sig)
      else this.emitter.emit('message', route.from, route.body as JsonValue)
      return
    }
    if (route.hops + 1 >= (this.options.maxHops ?? 8) || route.hops + 1 > MAX_ROUTE_HOPS) {
      this.dropped.hops++
      return
    }
    this.forward({ ...route, hops: route.hops + 1 }, from)
  }

  /** To the target when it is a neighbour; to every other connection when it is not. */
  private forward(route: RouteFrame, cameFrom: ChannelLink | undefined): void {
    const direct = [...this.links].find((l) => l.peer === route.to && !l.closed)
    if (direct) {
      direct.sendRoute(route)
      return
    }
    for (const link of this.links) if (link !== cameFrom && link.peer !== route.from) link.sendRoute(route)
  }

  private remember(id: string): void {
    if (this.seen.size >= SEEN_MEMORY) this.seen.delete(this.seen.values().next().value as string)
    this.seen.add(id)
  }

  /**
   * The peer's id, a random part and a counter: a peer that guesses ids cannot have another's next message
   * taken for one already seen (and dropped).
   */
  private newId(): string {
    return `${this.options.id}.${this.salt}${(this.next++).toString(36)}`
  }

  /** A token bucket per connection: a peer that floods routed messages loses the excess, nobody else does. */
  private allowed(link: ChannelLink): boolean {
    const now = Date.now()
    const b = this.buckets.get(link) ?? { tokens: 2 * ROUTES_PER_SECOND, at: now }
    b.tokens = Math.min(2 * ROUTES_PER_SECOND, b.tokens + ((now - b.at) / 1000) * ROUTES_PER_SECOND)
    b.at = now
    this.buckets.set(link, b)
    if (b.tokens < 1) return false
    b.tokens--
    return true
  }
}
