import { sha256 } from '@noble/hashes/sha2'
import { bytesToHex } from '@noble/hashes/utils'
import { isIP } from 'node:net'
import { RTCPeerConnection, type RTCDataChannel, type RTCPeerConnectionConfig } from 'werift'
import { badInput, MallaError } from '../../core/errors.js'
import { silentLogger, type Logger } from '../../core/log.js'
import {
  checkRemoteDescription,
  checkRtcOptions,
  RTC_DEFAULTS,
  type PeerEvents,
  type RtcChannel,
  type RtcFactory,
  type RtcOptions,
  type RtcPeer,
} from '../../rtc/rtc-peer.js'
import { errorMessage as message, extraChannel, extraChannelEvents, PeerLifecycle } from '../../rtc/peer-lifecycle.js'

/**
 * What this side advertises as `a=max-message-size`: Chromium's own figure, and the largest message
 * @roamhq/wrtc delivers (it drops bigger ones silently). werift's default is 64 KiB.
 */
const MAX_MESSAGE_SIZE = 256 * 1024
/** What a description without `a=max-message-size` means (RFC 8841), and what is safe before any. */
const RFC_DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024

/**
 * How much werift holds at once; the rest waits in the adapter's own queue. Every message werift holds is
 * an async task waiting on one shared SCTP "flush" event, which wakes them all and unsubscribes each with
 * a linear scan: with hundreds of messages held, that costs whole seconds of CPU (1000 small messages
 * with ten 60 KiB ones among them: 6.4 s, under 1 s with this). A message bigger than the budget goes
 * alone. Each message also counts `FEED_COST_PER_MESSAGE`, so that tiny messages come in batches too.
 */
const FEED_BUDGET_BYTES = 256 * 1024
const FEED_COST_PER_MESSAGE = 2048

/** See `enlargeReceiveBuffers`; the kernel doubles it, and caps it at net.core.rmem_max. */
const RECEIVE_BUFFER_BYTES = 1024 * 1024

/**
 * werift has a built-in STUN default (Google's public server) that `iceServers: []` does not remove: with
 * a default route and no internet, gathering then stalls 5 s per side, and a mesh node must never send
 * packets off the mesh. A discard-port STUN server on loopback replaces it, and a gather timeout of 0
 * stops werift waiting for its (never coming) reply.
 */
const NO_STUN: RTCPeerConnectionConfig = { iceServers: [{ urls: 'stun:127.0.0.1:9' }], iceStunGatherTimeout: 0 }

/**
 * Peers over werift (pure TypeScript WebRTC). `defaults` apply to every peer, under the options each
 * peer is made with; a daemon sets `hostAddresses` and `stunUrls` here once. `logger` hears about
 * failures that happen after a peer has already reported its end (a failing teardown).
 */
export function weriftRtcFactory(defaults: RtcOptions = {}, logger: Logger = silentLogger): RtcFactory {
  checkOptions(defaults)
  return (options) => {
    if (options) checkOptions(options)
    return new WeriftPeer({ ...defaults, ...options }, logger)
  }
}

function checkOptions(o: RtcOptions): void {
  checkRtcOptions(o)
  if (o.hostAddresses) {
    if (o.hostAddresses.length === 0) throw badInput('hostAddresses must name at least one address')
    for (const a of o.hostAddresses) if (!isIP(a)) throw badInput(`not an IP address: ${a}`)
  }
}

class WeriftPeer implements RtcPeer {
  readonly lowWaterMark: number
  readonly #life: PeerLifecycle = new PeerLifecycle(() => this.#teardown())
  readonly #options: RtcOptions
  readonly #logger: Logger
  #pc: RTCPeerConnection | undefined
  /** The app's channel (id 0), whose events are the peer's own, the sync channel (id 1) and the file channel (id 2). */
  readonly #app: WeriftLane
  readonly #sync: WeriftLane
  readonly #files: WeriftLane
  readonly syncChannel: RtcChannel
  readonly fileChannel: RtcChannel
  readonly #unsubscribe: (() => void)[] = []

  constructor(options: RtcOptions, logger: Logger) {
    this.#options = options
    this.#logger = logger
    this.lowWaterMark = options.lowWaterMark ?? RTC_DEFAULTS.lowWaterMark
    this.#app = new WeriftLane(this.#life, this.#life.events, this.lowWaterMark)
    const syncEvents = extraChannelEvents(this.#life)
    this.#sync = new WeriftLane(this.#life, syncEvents, this.lowWaterMark)
    this.syncChannel = extraChannel(this, this.#sync, syncEvents)
    const fileEvents = extraChannelEvents(this.#life)
    this.#files = new WeriftLane(this.#life, fileEvents, this.lowWaterMark)
    this.fileChannel = extraChannel(this, this.#files, fileEvents)
  }

  get state(): RtcPeer['state'] {
    return this.#life.state
  }

  get bufferedAmount(): number {
    return this.#app.bufferedAmount
  }

  get maxMessageSize(): number {
    const remote = this.#pc?.remoteDescription ? this.#pc.sctpTransport?.remoteMaxMessageSize : undefined
    if (remote === undefined) return RFC_DEFAULT_MAX_MESSAGE_SIZE
    // 0 is SDP's "no limit"; this side still sends no more than it would take itself.
    return remote === 0 ? MAX_MESSAGE_SIZE : Math.min(remote, MAX_MESSAGE_SIZE)
  }

  on: RtcPeer['on'] = (event, listener) => this.#life.events.on(event, listener)

  remoteCertificateSha256(): string | undefined {
    // werift keeps the peer's certificate (DER) on the DTLS socket of its one transport (bundled).
    const der = (this.#pc?.dtlsTransports[0] as { dtls?: { remoteCertificate?: Uint8Array } } | undefined)?.dtls?.remoteCertificate
    return der instanceof Uint8Array ? bytesToHex(sha256(der)) : undefined
  }

  async createOffer(): Promise<string> {
    const pc = this.#start('offerer')
    return this.#life.step('creating the offer', async () => {
      this.#openChannels(pc)
      const offer = await pc.createOffer()
      this.#life.ensureOpen()
      return await this.#gather(pc, pc.setLocalDescription(offer))
    })
  }

  async acceptOffer(offerSdp: string): Promise<string> {
    const pc = this.#start('answerer')
    this.#life.armConnectTimer(this.#options.connectTimeoutMs ?? RTC_DEFAULTS.connectTimeoutMs)
    return this.#life.step('answering the offer', async () => {
      await pc.setRemoteDescription({ type: 'offer', sdp: checkRemoteDescription(offerSdp, 'offer') })
      this.#life.ensureOpen()
      // Created after the offer is applied, so that they join the SCTP transport the offer set up.
      this.#openChannels(pc)
      const answer = await pc.createAnswer()
      this.#life.ensureOpen()
      return await this.#gather(pc, pc.setLocalDescription(answer))
    })
  }

  async acceptAnswer(answerSdp: string): Promise<void> {
    const pc = this.#pc
    await this.#life.applyAnswer(!!pc?.localDescription, this.#options.connectTimeoutMs ?? RTC_DEFAULTS.connectTimeoutMs, () =>
      (pc as RTCPeerConnection).setRemoteDescription({ type: 'answer', sdp: checkRemoteDescription(answerSdp, 'answer') }),
    )
  }

  send(data: string | Uint8Array): void {
    this.#app.send(data, this.maxMessageSize)
  }

  close(): void {
    this.#life.finish('local')
  }

  #start(role: 'offerer' | 'answerer'): RTCPeerConnection {
    this.#life.begin(role)
    const o = this.#options
    const stunUrls = o.stunUrls ?? []
    const pc = new RTCPeerConnection({
      ...(stunUrls.length
        ? // werift asks only the first STUN server; its timeout (in seconds) ends gathering by gather.maxMs.
          { iceServers: [{ urls: [...stunUrls] }], iceStunGatherTimeout: (o.gather?.maxMs ?? RTC_DEFAULTS.maxMs) / 1000 }
        : NO_STUN),
      ...(o.hostAddresses
        ? // No interface enumeration at all: exactly these addresses (werift would skip loopback and veths).
          { iceUseIpv4: false, iceUseIpv6: false, iceAdditionalHostAddresses: [...o.hostAddresses] }
        : {}),
      maxMessageSize: MAX_MESSAGE_SIZE,
    })
    this.#pc = pc
    this.#unsubscribe.push(
      pc.connectionStateChange.subscribe((s) => {
        // 'disconnected' may recover (consent checks resume); 'closed' here means werift gave up by itself.
        if (s === 'failed' || s === 'closed') this.#life.finish('failed', `connection ${s}`)
      }).unSubscribe,
    )
    return pc
  }

  /**
   * Negotiated channels (id 0 for the app, id 1 for sync, id 2 for files) on each side rather than in-band
   * ones: neither side waits for a DCEP open/ack round trip or a `datachannel` event, the answerer's channels
   * exist before any data can arrive, and a remote cannot push extra channels on us (werift would announce
   * them; nobody listens).
   */
  #openChannels(pc: RTCPeerConnection): void {
    for (const [lane, id, label] of [[this.#app, 0, 'malla'], [this.#sync, 1, 'malla-sync'], [this.#files, 2, 'malla-files']] as const) {
      const channel = pc.createDataChannel(label, { negotiated: true, id, ordered: true })
      // 0, not lowWaterMark: this tells the feed that werift has sent all it held (see WeriftLane.feed).
      channel.bufferedAmountLowThreshold = 0
      lane.attach(channel)
      this.#unsubscribe.push(
        channel.stateChanged.subscribe((s) => {
          if (s === 'open' && id === 0) this.#life.opened()
          // Reached only for the remote's close: #finish unsubscribes before closing the channel itself.
          else if (s === 'closed') this.#life.finish('remote', 'data channel closed')
        }).unSubscribe,
        channel.onMessage.subscribe((m) => {
          // The SCTP association can come up on the remote first; data is proof enough that it is up here.
          if (this.#life.state === 'connecting') this.#life.opened()
          if (this.#life.state !== 'open') return
          // A plain Uint8Array view on the same bytes: callers compare and re-wrap bytes, not Buffers.
          lane.events.emit('message', typeof m === 'string' ? m : new Uint8Array(m.buffer, m.byteOffset, m.byteLength))
        }).unSubscribe,
        channel.bufferedAmountLow.subscribe(() => {
          if (this.#life.state === 'open') lane.feed()
        }).unSubscribe,
        channel.error.subscribe((e) => this.#life.finish('failed', `data channel error: ${message(e)}`)).unSubscribe,
      )
    }
  }

  /**
   * werift's setLocalDescription itself waits for gathering (host candidates in a few ms, then STUN until
   * its timeout); the SDP goes out when that ends, by gather.maxMs, or not at all if the peer closes.
   */
  async #gather(pc: RTCPeerConnection, setLocal: Promise<unknown>): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#options.gather?.maxMs ?? RTC_DEFAULTS.maxMs)))
    try {
      await Promise.race([setLocal, deadline, this.#life.closed])
    } finally {
      clearTimeout(timer)
    }
    // Once the description is handed out, a late failure of setLocal can only end the peer.
    setLocal.catch((e: unknown) => this.#life.finish('failed', `setting the local description: ${message(e)}`))
    this.#life.ensureOpen()
    enlargeReceiveBuffers(pc, this.#logger)
    const sdp = pc.localDescription?.sdp
    if (!sdp) throw new MallaError('PEER', 'no local description after gathering')
    return sdp
  }




  /** What ending this peer means for the stack; `PeerLifecycle.finish` runs it once, before `close` fires. */
  #teardown(): void {
    for (const off of this.#unsubscribe.splice(0)) off()
    const pc = this.#pc
    for (const lane of [this.#app, this.#sync, this.#files]) {
      try {
        // Closing a channel first resets its stream, which the remote reports as a plain close.
        lane.detach()
      } catch (e) {
        this.#logger.warn('rtc: closing a data channel failed', { error: message(e) })
      }
    }
    if (pc) stopDtlsRetransmits(pc)
    pc?.close().catch((e: unknown) => this.#logger.warn('rtc: closing the peer connection failed', { error: message(e) }))
  }
}

/**
 * One data channel's sending side: messages accepted by send() wait here and are handed to werift while it
 * holds less than the budget (FEED_BUDGET_BYTES). werift's own bufferedAmount falls to 0 once it has sent all
 * it holds (its `bufferedAmountLow` at threshold 0), which feeds more. `events` hears its messages and drains.
 */
class WeriftLane {
  #channel: RTCDataChannel | undefined
  readonly #queue: { readonly data: string | Buffer; readonly size: number }[] = []
  #queuedBytes = 0
  #aboveLowWater = false

  constructor(
    private readonly life: PeerLifecycle,
    readonly events: PeerEvents,
    private readonly lowWaterMark: number,
  ) {}

  get bufferedAmount(): number {
    return this.#queuedBytes + (this.#channel?.bufferedAmount ?? 0)
  }

  attach(channel: RTCDataChannel): void {
    this.#channel = channel
  }

  send(data: string | Uint8Array, maxMessageSize: number): void {
    const channel = this.#channel
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
    this.life.checkSend(channel, size, maxMessageSize)
    this.#queue.push({ data: typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength), size })
    this.#queuedBytes += size
    if (this.bufferedAmount > this.lowWaterMark) this.#aboveLowWater = true
    this.feed()
  }

  feed(): void {
    const channel = this.#channel
    if (channel === undefined) return
    let held = channel.bufferedAmount === 0 ? 0 : FEED_BUDGET_BYTES
    while (this.#queue.length) {
      const next = this.#queue[0] as { data: string | Buffer; size: number }
      const cost = next.size + FEED_COST_PER_MESSAGE
      if (held > 0 && held + cost > FEED_BUDGET_BYTES) break
      this.#queue.shift()
      this.#queuedBytes -= next.size
      held += cost
      try {
        channel.send(next.data)
      } catch (e) {
        // Checked in send(), so this is werift refusing a channel it considers open: the peer is unusable.
        this.life.finish('failed', `werift refused a message: ${message(e)}`)
        return
      }
    }
    if (this.#aboveLowWater && this.bufferedAmount <= this.lowWaterMark) {
      this.#aboveLowWater = false
      this.events.emit('drain')
    }
  }

  detach(): void {
    this.#queue.length = 0
    this.#queuedBytes = 0
    const channel = this.#channel
    if (channel && channel.readyState !== 'closed') channel.close()
  }
}

/**
 * werift sends every SCTP DATA chunk in a datagram of its own, and its congestion window counts payload
 * bytes only, so a burst of small messages leaves as a burst of as many datagrams. On loopback the default
 * 208 KiB socket buffer overflowed (thousands of RcvbufErrors), and each loss waited for SCTP's 1 s
 * retransmission timer: 1000 small messages took 3.5 s, 0.26 s with this. The sockets exist once
 * gathering is done. Internal fields, so every step is checked; if werift changes them, this does nothing.
 */
function enlargeReceiveBuffers(pc: RTCPeerConnection, logger: Logger): void {
  for (const ice of pc.iceTransports) {
    const protocols = (ice.connection as unknown as { protocols?: unknown }).protocols
    if (!Array.isArray(protocols)) continue
    for (const protocol of protocols as unknown[]) {
      const socket = (protocol as { transport?: { socket?: { setRecvBufferSize?: unknown } } } | undefined)?.transport?.socket
      if (typeof socket?.setRecvBufferSize !== 'function') continue
      try {
        ;(socket.setRecvBufferSize as (bytes: number) => void).call(socket, RECEIVE_BUFFER_BYTES)
      } catch (e) {
        logger.debug('rtc: could not enlarge a UDP receive buffer', { error: message(e) })
      }
    }
  }
}

/**
 * werift 0.25 goes on retransmitting an unfinished DTLS handshake flight for up to 33 s after close()
 * (its loop only asks whether the next flight arrived), which holds a process open long after a failed
 * handshake. Marking the handshake as past every flight ends that loop at its next wake-up (within
 * 5.5 s). These are internal fields, so every step is checked: if werift changes them, this does nothing.
 */
function stopDtlsRetransmits(pc: RTCPeerConnection): void {
  for (const transport of pc.dtlsTransports) {
    if (transport.state === 'connected') continue
    const context = (transport as unknown as { dtls?: { dtls?: { flight?: unknown } } }).dtls?.dtls
    if (context && typeof context.flight === 'number') context.flight = Number.MAX_SAFE_INTEGER
  }
}


