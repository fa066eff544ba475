import { createNanoEvents } from 'nanoevents'
import { MallaError } from '../../src/core/errors.js'
import type { RtcChannel, RtcCloseReason, RtcFactory, RtcOptions, RtcPeer, RtcPeerEvents } from '../../src/rtc/rtc-peer.js'
import { sessionFacts, toSdp, type SessionFacts } from '../../src/signaling/sdp-codec.js'

const FAKE_FINGERPRINT = 'ab'.repeat(32)

/**
 * WebRTC without WebRTC, for unit tests of the signaling races (test/unit/mesh-races.test.ts): descriptions are
 * real SDP (the mesh compacts and expands them as usual), and a connection opens `openMs` after the offerer
 * applied an answer, between exactly that offer and that answer, as ICE and DTLS pair one offer's agent with
 * one answerer. An answerer whose answer the offerer never applied stays connecting until its connect timeout,
 * as a real one does. What a peer sends arrives at the other end in order, a tick later; until then it counts
 * in the channel's `bufferedAmount`, and `drain` fires when that falls back to `lowWaterMark` (`RtcOptions`,
 * default 0), as on a real channel, so that senders' backpressure runs here too.
 *
 * Only for what cannot be made to happen on purpose with real WebRTC: which of two answers arrives first.
 * The adapters themselves run the RTC conformance suite for real.
 */
export class FakeRtcNetwork {
  /** Peers by the ICE ufrag of the description they handed out. */
  private readonly byUfrag = new Map<string, FakePeer>()
  private next = 0
  /** Every peer made, for tests that look at what is left open. */
  readonly peers: FakePeer[] = []
  /** Peers whose handshake shows another certificate than their description names (a rewritten description). */
  readonly impostors = new Set<FakePeer>()

  constructor(readonly openMs = 5) {}

  factory(): RtcFactory {
    return (options?: RtcOptions) => {
      const peer = new FakePeer(this, `f${(this.next++).toString(36).padStart(4, '0')}`, options?.connectTimeoutMs ?? 10_000, options?.lowWaterMark ?? 0)
      this.peers.push(peer)
      return peer
    }
  }

  register(peer: FakePeer): void {
    this.byUfrag.set(peer.ufrag, peer)
  }

  find(sdp: string): FakePeer {
    const ufrag = sessionFacts(sdp).ufrag
    const peer = this.byUfrag.get(ufrag)
    if (!peer) throw new MallaError('PEER', `no peer handed out ufrag ${ufrag}`)
    return peer
  }

  /** RTCPeerConnections not closed yet. */
  open(): number {
    return this.peers.filter((p) => p.state !== 'closed').length
  }
}

/** What a channel needs of its connection. */
interface ChannelOwner {
  readonly state: RtcChannel['state']
  close(): void
}

class FakeChannel implements RtcChannel {
  readonly maxMessageSize = 262_144
  other: FakeChannel | undefined
  readonly emitter = createNanoEvents<RtcPeerEvents>()
  /** Bytes sent and not delivered yet. */
  private queued = 0

  constructor(
    private readonly owner: ChannelOwner,
    readonly lowWaterMark: number,
  ) {}

  get state(): RtcChannel['state'] {
    return this.owner.state
  }

  get bufferedAmount(): number {
    return this.queued
  }

  send(data: string | Uint8Array): void {
    if (this.owner.state !== 'open' || !this.other) throw new MallaError('PEER', 'the channel is not open')
    const size = typeof data === 'string' ? new TextEncoder().encode(data).byteLength : data.byteLength
    if (size === 0) throw new MallaError('BAD_INPUT', 'empty message')
    if (size > this.maxMessageSize) throw new MallaError('TOO_LARGE', `message of ${size} bytes`)
    const to = this.other
    // A copy, as a real stack makes: the sender may reuse its buffer, and the receiver gets bytes of its own.
    const copy = typeof data === 'string' ? data : data.slice()
    this.queued += size
    setTimeout(() => {
      const wasAbove = this.queued > this.lowWaterMark
      this.queued -= size
      if (to.state === 'open') to.emitter.emit('message', copy)
      if (wasAbove && this.queued <= this.lowWaterMark && this.owner.state === 'open') this.emitter.emit('drain')
    }, 0)
  }

  on<E extends keyof RtcPeerEvents>(event: E, listener: RtcPeerEvents[E]): () => void {
    return this.emitter.on(event, listener)
  }

  close(): void {
    this.owner.close()
  }
}

export class FakePeer implements RtcPeer {
  private current: RtcChannel['state'] = 'new'
  private readonly main: FakeChannel
  readonly syncChannel: FakeChannel
  readonly fileChannel: FakeChannel
  private remote: FakePeer | undefined
  private deadline: ReturnType<typeof setTimeout> | undefined
  private role: 'offerer' | 'answerer' | undefined
  /** Answerer side: the peer whose offer this one answered. */
  private offerer: FakePeer | undefined

  constructor(
    private readonly network: FakeRtcNetwork,
    readonly ufrag: string,
    private readonly connectTimeoutMs: number,
    lowWaterMark: number,
  ) {
    this.main = new FakeChannel(this, lowWaterMark)
    this.syncChannel = new FakeChannel(this, lowWaterMark)
    this.fileChannel = new FakeChannel(this, lowWaterMark)
  }

  get state(): RtcChannel['state'] {
    return this.current
  }

  get bufferedAmount(): number {
    return this.main.bufferedAmount
  }

  get lowWaterMark(): number {
    return this.main.lowWaterMark
  }

  get maxMessageSize(): number {
    return this.main.maxMessageSize
  }

  /** What a fake handshake shows of the other end, once open: the fingerprint every fake description carries, unless it is an impostor. */
  remoteCertificateSha256(): string | undefined {
    if (this.current !== 'open') return undefined
    const other = this.remote ?? this.offerer
    return other && this.network.impostors.has(other) ? 'cd'.repeat(32) : FAKE_FINGERPRINT
  }

  send(data: string | Uint8Array): void {
    this.main.send(data)
  }

  on<E extends keyof RtcPeerEvents>(event: E, listener: RtcPeerEvents[E]): () => void {
    return this.main.on(event, listener)
  }

  async createOffer(): Promise<string> {
    if (this.current !== 'new') throw new MallaError('PEER', `createOffer on a ${this.current} peer`)
    this.current = 'connecting'
    this.role = 'offerer'
    this.network.register(this)
    return toSdp(this.facts('actpass'), 'offer')
  }

  async acceptOffer(offerSdp: string): Promise<string> {
    if (this.current !== 'new') throw new MallaError('PEER', `acceptOffer on a ${this.current} peer`)
    this.offerer = this.network.find(offerSdp)
    this.current = 'connecting'
    this.role = 'answerer'
    this.network.register(this)
    this.deadline = setTimeout(() => this.end('timeout'), this.connectTimeoutMs)
    return toSdp(this.facts('active'), 'answer')
  }

  async acceptAnswer(answerSdp: string): Promise<void> {
    if (this.current !== 'connecting' || this.role !== 'offerer' || this.remote) throw new MallaError('PEER', 'acceptAnswer without an offer of ours waiting')
    const answerer = this.network.find(answerSdp)
    if (answerer.offerer !== this) throw new MallaError('PEER', 'an answer to another offer')
    this.remote = answerer
    this.deadline = setTimeout(() => this.end('timeout'), this.connectTimeoutMs)
    setTimeout(() => {
      // Both ends still waiting for each other: the one agent of the offer and this answerer pair up.
      if (this.current !== 'connecting' || answerer.current !== 'connecting' || answerer.remote !== undefined) return
      answerer.remote = this
      this.pair(answerer)
      this.opened()
      answerer.opened()
    }, this.network.openMs)
  }

  close(): void {
    this.end('local')
  }

  private channels(): FakeChannel[] {
    return [this.main, this.syncChannel, this.fileChannel]
  }

  private pair(other: FakePeer): void {
    const theirs = other.channels()
    this.channels().forEach((mine, i) => {
      const their = theirs[i] as FakeChannel
      mine.other = their
      their.other = mine
    })
  }

  private opened(): void {
    clearTimeout(this.deadline)
    this.current = 'open'
    for (const c of this.channels()) c.emitter.emit('open')
  }

  private end(reason: RtcCloseReason): void {
    if (this.current === 'closed') return
    const wasOpen = this.current === 'open'
    clearTimeout(this.deadline)
    this.current = 'closed'
    for (const c of this.channels()) c.emitter.emit('close', reason)
    if (wasOpen && this.remote) this.remote.end('remote')
  }

  private facts(setup: SessionFacts['setup']): SessionFacts {
    return {
      ufrag: this.ufrag,
      pwd: 'fakepasswordfakepassword',
      fingerprint: FAKE_FINGERPRINT,
      setup,
      candidates: [{ foundation: '1', component: 1, protocol: 'udp', priority: 2130706431, address: '10.0.0.1', port: 40000 + Number.parseInt(this.ufrag.slice(1), 36), type: 'host' }],
    }
  }
}
