import { badInput, isMallaError, MallaError } from '../core/errors.js'
import { peerEvents, type PeerEvents, type RtcChannel, type RtcCloseReason, type RtcPeer } from './rtc-peer.js'

/**
 * The part of an `RtcPeer` that is the same whatever the WebRTC stack: its state, its events, the connect
 * deadline, and the one way to its end (`finish`), which runs the adapter's own teardown and then fires
 * `close` exactly once. Adapters hold one and keep only what talks to their stack.
 */
export class PeerLifecycle {
  state: RtcPeer['state'] = 'new'
  /** Set by `begin`: which side of the negotiation this peer is. */
  role: 'offerer' | 'answerer' | undefined
  private answered = false
  readonly events = peerEvents()
  /** Resolves when the peer ends, so that a pending gather stops waiting at once. */
  readonly closed: Promise<void>
  private markClosed!: () => void
  private connectTimer: ReturnType<typeof setTimeout> | undefined

  constructor(private readonly teardown: () => void) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve))
  }

  /**
   * Runs one negotiation step; any failure ends the peer (reason 'failed') and rejects with a MallaError.
   * A close during the step rejects it at once (PEER): a browser abandons, and never settles, a call still
   * pending on an RTCPeerConnection that was closed (W3C webrtc-pc, the "operations chain").
   */
  async step<T>(what: string, body: () => Promise<T>): Promise<T> {
    try {
      return await Promise.race([
        body(),
        this.closed.then((): never => {
          throw closedError()
        }),
      ])
    } catch (e) {
      const error = isMallaError(e) ? e : new MallaError('PEER', `${what}: ${errorMessage(e)}`, { cause: e })
      this.finish('failed', error.message)
      throw error
    }
  }

  /** createOffer/acceptOffer: allowed once, on a new peer; the peer is connecting from here on. */
  begin(role: 'offerer' | 'answerer'): void {
    if (this.state !== 'new') throw this.state === 'closed' ? closedError() : new MallaError('PEER', 'createOffer/acceptOffer may be called once per peer')
    this.state = 'connecting'
    this.role = role
  }

  /**
   * acceptAnswer: allowed once, on an offerer whose offer is made (`offerMade`, the stack's local
   * description). Arms the connect deadline, then applies the answer as a step.
   */
  async applyAnswer(offerMade: boolean, connectTimeoutMs: number, apply: () => Promise<unknown>): Promise<void> {
    if (this.state === 'closed') throw closedError()
    if (this.role !== 'offerer' || !offerMade || this.answered) throw new MallaError('PEER', 'acceptAnswer needs a peer whose offer is made and not yet answered')
    this.answered = true
    this.armConnectTimer(connectTimeoutMs)
    await this.step('applying the answer', async () => {
      await apply()
    })
  }

  /** What send() refuses on every stack (see `RtcPeer.send`): a channel not open, an empty message, one over `max` bytes. */
  checkSend<C>(channel: C | undefined, size: number, max: number): asserts channel is C {
    if (this.state !== 'open' || channel === undefined) throw new MallaError('PEER', `cannot send: the channel is ${this.state}`)
    if (size === 0) throw badInput('empty messages are not sent (werift drops them silently)')
    if (size > max) throw new MallaError('TOO_LARGE', `message of ${size} bytes over the limit of ${max}`)
  }

  ensureOpen(): void {
    if (this.state === 'closed') throw closedError()
  }

  armConnectTimer(ms: number): void {
    clearTimeout(this.connectTimer)
    this.connectTimer = setTimeout(() => this.finish('timeout', `not open within ${ms} ms`), ms)
  }

  /** The channel opened: fires `open` once, and only while connecting. */
  opened(): void {
    if (this.state !== 'connecting') return
    this.state = 'open'
    clearTimeout(this.connectTimer)
    this.events.emit('open')
  }

  finish(reason: RtcCloseReason, detail?: string): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    clearTimeout(this.connectTimer)
    this.markClosed()
    this.teardown()
    this.events.emit('close', reason, detail)
    this.events.clear()
  }
}

export function closedError(): MallaError {
  return new MallaError('PEER', 'the peer is closed')
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

/**
 * The events of one of a peer's extra channels (sync, files): its own `message` and `drain`, the connection's
 * `open` and `close` (forwarded from `life`).
 */
export function extraChannelEvents(life: PeerLifecycle): PeerEvents {
  const events = peerEvents()
  life.events.on('open', () => events.emit('open'))
  life.events.on('close', (reason, detail) => {
    events.emit('close', reason, detail)
    events.clear()
  })
  return events
}

/** One of a peer's extra channels as an `RtcChannel`: sends and buffering of its own `lane`, the rest the peer's. */
export function extraChannel(
  peer: Pick<RtcPeer, 'state' | 'maxMessageSize' | 'lowWaterMark' | 'close'>,
  lane: { send(data: string | Uint8Array, maxMessageSize: number): void; readonly bufferedAmount: number },
  events: PeerEvents,
): RtcChannel {
  return {
    send: (data) => lane.send(data, peer.maxMessageSize),
    get bufferedAmount() {
      return lane.bufferedAmount
    },
    lowWaterMark: peer.lowWaterMark,
    get maxMessageSize() {
      return peer.maxMessageSize
    },
    get state() {
      return peer.state
    },
    on: (event, listener) => events.on(event, listener),
    close: () => peer.close(),
  }
}

