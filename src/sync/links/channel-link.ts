import { isMallaError, MallaError } from '../../core/errors.js'
import { silentLogger, type Logger } from '../../core/log.js'
import type { Replica } from '../../replica/replica.js'
import type { TableRef } from '../../storage/table-store.js'
import type { SyncRequest } from '../messages.js'
import { answer } from '../responder.js'
import { errorFrame, helloFrame, MAX_FRAME_ID, parseFrame, readReply, replyFrame, requestFrame, routeFrame, type ChannelFrame, type RouteFrame } from './channel-frames.js'
import type { LinkTraffic, ReceivedReply, Speaks, SyncLink } from './link.js'

/**
 * What a channel link needs from whatever carries its frames: whole text messages, in order, both ways.
 * A data channel (through FramedChannel, which cuts large messages into chunks) is one; tests use a pair in memory.
 */
export interface SyncPipe {
  /** Queues one message; may wait while the carrier's buffer is full. Rejects (or throws) once it is closed. */
  send(text: string): void | Promise<void>
  onMessage(listener: (text: string) => void): () => void
  /** Fires once, when the carrier ends (either side closed it, or it failed). */
  onClose(listener: (why: string) => void): () => void
  close(): void
}

export interface ChannelLinkOptions {
  readonly replica: Replica
  readonly pipe: SyncPipe
  /** Who is at the far end, as this node names it (a peer id): the link's id, so nothing goes back there. */
  readonly peer: string
  /** This node's name, told to the far end in the first frame. */
  readonly ownName?: string
  /** A request with no reply after this long fails (PEER); the default 10 s leaves room for a page of 256 KiB on a slow radio. */
  readonly timeoutMs?: number
  /** Which tables the far end may read and write through this link (every one by default); others are refused (FORBIDDEN). */
  readonly carries?: (ref: TableRef) => boolean
  /** Hears the routed messages the far end sends (overlay/message-router.ts); without it they are dropped. */
  readonly onRoute?: (route: RouteFrame, link: ChannelLink) => void
  /** Charged with the work each of the far end's requests asks for; throws (BUSY) to refuse one. */
  readonly charge?: (units: number) => void
  readonly log?: Logger
}

/** Requests of the far end answered at once, and waiting: a far end that sends more is flooding, and is cut off. */
const MAX_SERVING = 4
const MAX_WAITING = 64
/** And the text of the requests waiting, at most: each may be a whole page of entries. */
const MAX_WAITING_CHARS = 2 * 1024 * 1024

const encoder = new TextEncoder()

interface Pending {
  readonly request: SyncRequest
  readonly resolve: (reply: ReceivedReply) => void
  readonly reject: (error: MallaError) => void
  readonly timer: ReturnType<typeof setTimeout>
}

/**
 * A peer over a message channel: both halves of the sync protocol on one carrier. This side's requests go
 * out with ids and their replies come back in any order; the far end's requests are answered by the responder
 * with this link as their source, so what the far end brings is never pushed back to it. Anything malformed
 * gets an error reply (bad entries, a table this link does not carry) or, when it is not a frame at all or
 * comes too fast, ends the link.
 */
export class ChannelLink implements SyncLink {
  name: string | undefined
  private readonly totals = { exchanges: 0, bytesSent: 0, bytesReceived: 0 }
  private readonly pending = new Map<number, Pending>()
  private readonly waiting: Array<{ frame: Extract<ChannelFrame, { kind: 'request' }>; chars: number }> = []
  private waitingChars = 0
  private serving = 0
  private nextId = 1
  private closedWhy: string | undefined
  private readonly offs: Array<() => void>
  private readonly log: Logger
  private readonly closeListeners = new Set<(why: string) => void>()

  constructor(private readonly options: ChannelLinkOptions) {
    this.log = options.log ?? silentLogger
    this.offs = [options.pipe.onMessage((text) => this.received(text)), options.pipe.onClose((why) => this.ended(why))]
    this.sendFrame(helloFrame(options.ownName))
  }

  get id(): string {
    return `peer ${this.options.peer}`
  }

  get label(): string {
    return this.name === undefined ? this.options.peer : `${this.options.peer} (${this.name})`
  }

  /** Both ends add the link at once: the one whose name sorts first reconciles, for both. */
  get startsCatchUp(): boolean {
    const own = this.options.ownName
    return own === undefined || own < this.options.peer
  }

  /** A channel link exists only between malla nodes; once it is closed it speaks nothing. */
  get speaks(): Speaks | undefined {
    return this.closedWhy === undefined ? 'malla' : undefined
  }

  get closed(): boolean {
    return this.closedWhy !== undefined
  }

  /** This side's exchanges: its requests and their replies (the far end's requests count on its own link, as over HTTP). */
  get traffic(): LinkTraffic {
    return { ...this.totals }
  }

  /** Called once when the link ends, with why (its owner drops it from the engine then). */
  onClose(listener: (why: string) => void): () => void {
    if (this.closedWhy !== undefined) {
      listener(this.closedWhy)
      return () => {}
    }
    this.closeListeners.add(listener)
    return () => void this.closeListeners.delete(listener)
  }

  request(request: SyncRequest): Promise<ReceivedReply> {
    if (this.closedWhy !== undefined) return Promise.reject(new MallaError('PEER', `the link to ${this.label} is closed: ${this.closedWhy}`))
    const id = this.nextId
    this.nextId = this.nextId >= MAX_FRAME_ID ? 1 : this.nextId + 1
    this.totals.exchanges++
    return new Promise<ReceivedReply>((resolve, reject) => {
      const timeoutMs = this.options.timeoutMs ?? 10_000
      const timer = setTimeout(() => {
        // A late reply finds no one waiting and is dropped.
        this.pending.delete(id)
        reject(new MallaError('PEER', `${this.label} did not answer a ${request.t} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { request, resolve, reject, timer })
      this.sendFrame(requestFrame(id, request), true)
    })
  }

  /** Sends a routed message to the far end (false when the link is closed). */
  sendRoute(route: RouteFrame): boolean {
    if (this.closedWhy !== undefined) return false
    this.sendFrame(routeFrame(route))
    return true
  }

  /** Who is at the far end, as this node names it. */
  get peer(): string {
    return this.options.peer
  }

  close(): void {
    this.ended('closed here')
  }

  private sendFrame(text: string, mine = false): void {
    if (this.closedWhy !== undefined) return
    if (mine) this.totals.bytesSent += encoder.encode(text).byteLength
    try {
      const sent = this.options.pipe.send(text)
      if (sent instanceof Promise) sent.catch((e: Error) => this.ended(`sending failed: ${e.message}`))
    } catch (e) {
      this.ended(`sending failed: ${(e as Error).message}`)
    }
  }

  private received(text: string): void {
    if (this.closedWhy !== undefined) return
    let frame: ChannelFrame
    try {
      frame = parseFrame(text)
    } catch (e) {
      return this.broken((e as Error).message)
    }
    switch (frame.kind) {
      case 'hello':
        this.name = frame.name
        return
      case 'route':
        return this.options.onRoute?.(frame.route, this)
      case 'reply':
        return this.replied(frame.id, frame.body, text)
      case 'bad-request':
        return this.sendFrame(errorFrame(frame.id, frame.code, frame.message))
      case 'request':
        if (this.waiting.length >= MAX_WAITING) return this.broken(`more than ${MAX_WAITING} requests waiting for an answer`)
        if (this.waitingChars + text.length > MAX_WAITING_CHARS) return this.broken(`more than ${MAX_WAITING_CHARS} characters of requests waiting for an answer`)
        this.waiting.push({ frame, chars: text.length })
        this.waitingChars += text.length
        return this.serveNext()
    }
  }

  private replied(id: number, body: Record<string, unknown>, text: string): void {
    const p = this.pending.get(id)
    // Late (its request timed out) or made up: nothing waits for it.
    if (p === undefined) return
    this.totals.bytesReceived += encoder.encode(text).byteLength
    this.pending.delete(id)
    clearTimeout(p.timer)
    let reply
    try {
      reply = readReply(body, p.request)
    } catch (e) {
      return p.reject(new MallaError('PEER', `${this.label} answered a ${p.request.t} with something unusable: ${(e as Error).message}`))
    }
    if ('code' in reply) return p.reject(new MallaError(reply.code === 'BUSY' ? 'BUSY' : 'PEER', `${this.label} refused a ${p.request.t}: ${reply.message}`))
    p.resolve(reply)
  }

  /** Answers the far end's requests, a few at a time, in the order they came. */
  private serveNext(): void {
    while (this.serving < MAX_SERVING && this.waiting.length > 0 && this.closedWhy === undefined) {
      const { frame, chars } = this.waiting.shift() as (typeof this.waiting)[number]
      this.waitingChars -= chars
      this.serving++
      void this.serve(frame).finally(() => {
        this.serving--
        this.serveNext()
      })
    }
  }

  private async serve({ id, request }: Extract<ChannelFrame, { kind: 'request' }>): Promise<void> {
    const { replica, carries, charge } = this.options
    try {
      // A whole table is what LibreMesh's endpoint answers; on a channel every table is reconciled instead,
      // and a request that could make this side send all of it is not one a malla peer needs.
      if (request.t === 'table') throw new MallaError('BAD_INPUT', 'whole-table requests are not answered on a channel; reconcile instead')
      if (carries && !carries(request.ref)) throw new MallaError('FORBIDDEN', `table ${request.ref.flavour}/${request.ref.type} does not travel on this link`)
      const { reply } = await answer(replica, request, { source: this.id, ...(charge ? { charge } : {}) })
      this.sendFrame(replyFrame(id, reply))
    } catch (e) {
      const error = isMallaError(e) ? e : new MallaError('INTERNAL', (e as Error).message)
      if (error.code === 'INTERNAL' || error.code === 'STORAGE') this.log.warn('could not answer a peer', { peer: this.label, request: request.t, error: error.message })
      this.sendFrame(errorFrame(id, error.code, error.message))
    }
  }

  /** The far end broke the protocol: say why in the log, and end the link. */
  private broken(why: string): void {
    this.log.warn('peer broke the sync protocol; closing the link', { peer: this.label, error: why.slice(0, 300) })
    this.ended(`protocol broken: ${why.slice(0, 300)}`)
  }

  private ended(why: string): void {
    if (this.closedWhy !== undefined) return
    this.closedWhy = why
    for (const off of this.offs) off()
    this.waiting.length = 0
    this.waitingChars = 0
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(new MallaError('PEER', `the link to ${this.label} closed: ${why}`))
    }
    this.pending.clear()
    this.options.pipe.close()
    for (const listener of [...this.closeListeners]) listener(why)
    this.closeListeners.clear()
  }
}
