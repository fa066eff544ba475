import { sha256 } from '@noble/hashes/sha2'
import { bytesToHex } from '@noble/hashes/utils'
import { MallaError } from '../../core/errors.js'
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
import { isMdnsName } from '../../signaling/sdp-codec.js'

/** The part of the W3C constructor this adapter uses, so that a page or a test can inject its own. */
export type RTCPeerConnectionConstructor = new (configuration?: RTCConfiguration) => RTCPeerConnection

/** What RFC 8841 says a description without `a=max-message-size` allows, and what is safe before any. */
const RFC_DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024
/** The cap when a stack reports no limit at all: what Chromium and @roamhq/wrtc take. */
const MAX_MESSAGE_SIZE = 256 * 1024
/** SCTP cause "User-Initiated Abort": the remote closed its connection, which is a close, not a failure. */
const SCTP_USER_INITIATED_ABORT = 12

/**
 * Peers over the W3C `RTCPeerConnection`: the page's own by default. `defaults` apply to every peer,
 * under the options each peer is made with (`hostAddresses` means nothing here: browsers choose their
 * interfaces). `logger` hears about failures after a peer has already reported its end.
 */
export function browserRtcFactory(
  RTCPeerConnection: RTCPeerConnectionConstructor = globalThis.RTCPeerConnection,
  defaults: RtcOptions = {},
  logger: Logger = silentLogger,
): RtcFactory {
  if (typeof RTCPeerConnection !== 'function') throw new MallaError('PEER', 'this platform has no RTCPeerConnection')
  checkRtcOptions(defaults)
  const spares = new SparePeerConnection(RTCPeerConnection)
  return (options) => {
    if (options) checkRtcOptions(options)
    return new BrowserPeer((config) => spares.take(config), { ...defaults, ...options }, logger)
  }
}

/** A made-ahead RTCPeerConnection is made this long after the last one was taken, past the busiest part of its start. */
const SPARE_DELAY_MS = 50

/**
 * One RTCPeerConnection made ahead of need, for the next peer with the same ICE servers: its constructor
 * takes about a millisecond of the page's main thread, on the path from "answer this offer" to the answer.
 * An unused one is inert (gathering starts only with a local description); there is never more than one.
 */
class SparePeerConnection {
  #spare: { key: string; pc: RTCPeerConnection } | undefined
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor(private readonly Pc: RTCPeerConnectionConstructor) {}

  take(config: RTCConfiguration): RTCPeerConnection {
    const key = JSON.stringify(config.iceServers ?? [])
    const spare = this.#spare
    this.#spare = undefined
    clearTimeout(this.#timer)
    // Made later, once this one's handshake is likely over, and only if the page is still making peers.
    this.#timer = setTimeout(() => {
      this.#spare?.pc.close()
      this.#spare = { key, pc: new this.Pc(config) }
    }, SPARE_DELAY_MS)
    if (spare && spare.key === key && spare.pc.signalingState === 'stable' && spare.pc.connectionState === 'new') return spare.pc
    spare?.pc.close()
    return new this.Pc(config)
  }
}

class BrowserPeer implements RtcPeer {
  readonly lowWaterMark: number
  readonly #life: PeerLifecycle = new PeerLifecycle(() => this.#teardown())
  readonly #makePc: (config: RTCConfiguration) => RTCPeerConnection
  readonly #options: RtcOptions
  readonly #logger: Logger
  #pc: RTCPeerConnection | undefined
  /** The app's channel (id 0), whose events are the peer's own, the sync channel (id 1) and the file channel (id 2). */
  readonly #app: BrowserLane
  readonly #sync: BrowserLane
  readonly #files: BrowserLane
  readonly syncChannel: RtcChannel
  readonly fileChannel: RtcChannel
  /** A channel error seen before its close event: the close is then a failure, not the remote's choice. */
  #channelError: string | undefined

  constructor(makePc: (config: RTCConfiguration) => RTCPeerConnection, options: RtcOptions, logger: Logger) {
    this.#makePc = makePc
    this.#options = options
    this.#logger = logger
    this.lowWaterMark = options.lowWaterMark ?? RTC_DEFAULTS.lowWaterMark
    this.#app = new BrowserLane(this.#life, this.#life.events)
    const syncEvents = extraChannelEvents(this.#life)
    this.#sync = new BrowserLane(this.#life, syncEvents)
    this.syncChannel = extraChannel(this, this.#sync, syncEvents)
    const fileEvents = extraChannelEvents(this.#life)
    this.#files = new BrowserLane(this.#life, fileEvents)
    this.fileChannel = extraChannel(this, this.#files, fileEvents)
  }

  get state(): RtcPeer['state'] {
    return this.#life.state
  }

  get bufferedAmount(): number {
    return this.#app.bufferedAmount
  }

  get maxMessageSize(): number {
    // Browsers compute this from both sides' limits once the remote description is applied.
    const reported = this.#pc?.remoteDescription ? this.#pc.sctp?.maxMessageSize : undefined
    if (reported === undefined || !(reported > 0)) return RFC_DEFAULT_MAX_MESSAGE_SIZE
    return Number.isFinite(reported) ? reported : MAX_MESSAGE_SIZE
  }

  on: RtcPeer['on'] = (event, listener) => this.#life.events.on(event, listener)

  remoteCertificateSha256(): string | undefined {
    // Chromium gives the chain the peer sent (a WebRTC certificate is self-signed: one); Firefox has no such call.
    const transport = this.#pc?.sctp?.transport as (RTCDtlsTransport & { getRemoteCertificates?(): ArrayBuffer[] }) | undefined
    const der = transport?.getRemoteCertificates?.()[0]
    return der ? bytesToHex(sha256(new Uint8Array(der))) : undefined
  }

  async createOffer(): Promise<string> {
    const pc = this.#start('offerer')
    return this.#life.step('creating the offer', async () => {
      // The channels come first, so that the offer has its data-channel section.
      this.#openChannels(pc)
      const offer = await pc.createOffer()
      this.#life.ensureOpen()
      return await this.#gather(pc, offer)
    })
  }

  async acceptOffer(offerSdp: string): Promise<string> {
    const pc = this.#start('answerer')
    this.#life.armConnectTimer(this.#options.connectTimeoutMs ?? RTC_DEFAULTS.connectTimeoutMs)
    return this.#life.step('answering the offer', async () => {
      await pc.setRemoteDescription({ type: 'offer', sdp: checkRemoteDescription(offerSdp, 'offer') })
      this.#life.ensureOpen()
      this.#openChannels(pc)
      const answer = await pc.createAnswer()
      this.#life.ensureOpen()
      return await this.#gather(pc, answer)
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
    const stunUrls = this.#options.stunUrls ?? []
    const pc = this.#makePc({ iceServers: stunUrls.length ? [{ urls: [...stunUrls] }] : [] })
    this.#pc = pc
    const watch = () => {
      this.#logger.debug('rtc: state', { peer: this.#options.label, role, connection: pc.connectionState, ice: pc.iceConnectionState, gathering: pc.iceGatheringState })
      const s = pc.connectionState ?? pc.iceConnectionState
      // 'disconnected' may recover by itself; 'failed' does not.
      if (s === 'failed') this.#life.finish('failed', 'ICE or DTLS failed')
    }
    pc.onconnectionstatechange = watch
    pc.oniceconnectionstatechange = watch
    return pc
  }

  /**
   * Negotiated channels (id 0 for the app, id 1 for sync, id 2 for files) on each side rather than in-band
   * ones: neither side waits for a DCEP open/ack round trip or a `datachannel` event, the answerer's channels
   * exist before any data can arrive, and a remote cannot push extra channels on us.
   */
  #openChannels(pc: RTCPeerConnection): void {
    for (const [lane, id, label] of [[this.#app, 0, 'malla'], [this.#sync, 1, 'malla-sync'], [this.#files, 2, 'malla-files']] as const) {
      const channel = pc.createDataChannel(label, { negotiated: true, id, ordered: true })
      // Blobs would arrive asynchronously, out of order with strings; ArrayBuffers convert at once.
      channel.binaryType = 'arraybuffer'
      channel.bufferedAmountLowThreshold = this.lowWaterMark
      lane.attach(channel)
      channel.onopen = () => (id === 0 ? this.#life.opened() : lane.flush())
      channel.onmessage = (e: MessageEvent<unknown>) => {
        if (this.#life.state !== 'open') return
        const data = e.data
        if (typeof data === 'string') lane.events.emit('message', data)
        else if (data instanceof ArrayBuffer) lane.events.emit('message', new Uint8Array(data))
        // Some polyfills (werift's, wrtc's) hand out Buffers or other views whatever binaryType says.
        else if (ArrayBuffer.isView(data)) lane.events.emit('message', new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
        else this.#life.finish('failed', `a message of an unexpected kind (${Object.prototype.toString.call(data)}) arrived`)
      }
      channel.onbufferedamountlow = () => {
        if (this.#life.state === 'open') lane.events.emit('drain')
      }
      channel.onerror = (e: Event) => {
        const error = (e as Partial<RTCErrorEvent>).error
        // The remote closing its connection aborts the association; its close event follows, and is a close.
        if (error?.sctpCauseCode === SCTP_USER_INITIATED_ABORT) return
        // The close event follows; it decides, with this as the reason.
        this.#channelError = error?.message || error?.errorDetail || 'data channel error'
      }
      channel.onclose = () => {
        // Reached only for the remote's close: detach() removes these handlers before closing the channel itself.
        if (this.#channelError !== undefined) this.#life.finish('failed', this.#channelError)
        else this.#life.finish('remote', 'data channel closed')
      }
    }
  }

  /**
   * Sets the local description and waits until it is worth handing out (see `RtcOptions.gather`):
   * gathering complete, or a routable candidate and then `settleMs` with no new one, or `maxMs`.
   */
  async #gather(pc: RTCPeerConnection, description: RTCSessionDescriptionInit): Promise<string> {
    const settleMs = this.#options.gather?.settleMs ?? RTC_DEFAULTS.settleMs
    const maxMs = this.#options.gather?.maxMs ?? RTC_DEFAULTS.maxMs
    let ready!: () => void
    const enough = new Promise<void>((resolve) => (ready = resolve))
    let routable = false
    let settle: ReturnType<typeof setTimeout> | undefined
    const deadline = setTimeout(() => ready(), maxMs)
    // Set before setLocalDescription, which starts gathering.
    pc.onicecandidate = (e: RTCPeerConnectionIceEvent) => {
      // null (or, in older stacks, an empty candidate) marks the end of gathering.
      if (!e.candidate || !e.candidate.candidate) return ready()
      // An answer is waited for: it goes with the router's STUN answer, which comes a round trip after the
      // host candidates, which need no network (an mDNS one may still be registering, but the reflexive one
      // on its port stands for it: sdp-codec's withoutShadowedNames); another could only add a second path.
      // An offer is published ahead of need, and lets gathering finish rather than run on into a handshake.
      if (e.candidate.type === 'srflx' && this.#life.role === 'answerer') return ready()
      routable ||= isRoutable(e.candidate)
      if (!routable) return
      clearTimeout(settle)
      settle = setTimeout(() => ready(), settleMs)
    }
    pc.onicegatheringstatechange = () => {
      if (pc.iceGatheringState === 'complete') ready()
    }
    try {
      await pc.setLocalDescription(description)
      if (pc.iceGatheringState === 'complete') ready()
      await Promise.race([enough, this.#life.closed])
    } finally {
      clearTimeout(deadline)
      clearTimeout(settle)
      pc.onicecandidate = null
      pc.onicegatheringstatechange = null
    }
    this.#life.ensureOpen()
    // The local description carries every candidate gathered so far (JSEP): nothing is left to trickle.
    const sdp = pc.localDescription?.sdp
    if (!sdp) throw new MallaError('PEER', 'no local description after gathering')
    return sdp
  }




  /** What ending this peer means for the stack; `PeerLifecycle.finish` runs it once, before `close` fires. */
  #teardown(): void {
    const pc = this.#pc
    if (pc) pc.onconnectionstatechange = pc.oniceconnectionstatechange = null
    try {
      // Closing the channels first resets their streams, which the remote reports as a plain close.
      for (const lane of [this.#app, this.#sync, this.#files]) lane.detach()
      pc?.close()
    } catch (e) {
      this.#logger.warn('rtc: closing the peer connection failed', { error: message(e) })
    }
  }
}

/**
 * One data channel's sending side. The sync and file channels may open a moment after the app's (each opens on
 * its own event): what is sent on them in between waits here, in order, and goes when they open.
 */
class BrowserLane {
  #channel: RTCDataChannel | undefined
  readonly #early: Array<string | Uint8Array> = []

  constructor(
    private readonly life: PeerLifecycle,
    readonly events: PeerEvents,
  ) {}

  get bufferedAmount(): number {
    return this.#channel?.bufferedAmount ?? 0
  }

  attach(channel: RTCDataChannel): void {
    this.#channel = channel
  }

  send(data: string | Uint8Array, max: number): void {
    const channel = this.#channel
    // A string's UTF-8 length is at most 3 bytes per UTF-16 unit: counted exactly only when that could matter.
    const size = typeof data === 'string' ? (data.length * 3 <= max ? data.length : utf8Length(data)) : data.byteLength
    this.life.checkSend(channel, size, max)
    if (channel.readyState === 'connecting') {
      this.#early.push(data)
      return
    }
    this.#put(channel, data)
  }

  flush(): void {
    const channel = this.#channel
    if (channel === undefined) return
    for (const data of this.#early.splice(0)) this.#put(channel, data)
  }

  #put(channel: RTCDataChannel, data: string | Uint8Array): void {
    try {
      if (typeof data === 'string') channel.send(data)
      // send() takes views on ArrayBuffers only; a view on a SharedArrayBuffer is copied.
      else channel.send(data.buffer instanceof ArrayBuffer ? (data as Uint8Array<ArrayBuffer>) : new Uint8Array(data))
    } catch (e) {
      // Chromium throws (OperationError) when its send queue is full: the caller ignored backpressure.
      throw new MallaError('PEER', `send failed: ${message(e)}`, { cause: e })
    }
  }

  detach(): void {
    this.#early.length = 0
    const channel = this.#channel
    if (!channel) return
    channel.onopen = channel.onmessage = channel.onbufferedamountlow = channel.onerror = channel.onclose = null
    channel.close()
  }
}

/** A candidate whose address is an IP, not only an mDNS name (`<uuid>.local`) that the remote must resolve. */
function isRoutable(c: RTCIceCandidate): boolean {
  // `address` is missing in some stacks; the candidate line has it as its fifth field.
  const address = c.address ?? c.candidate.split(' ')[4]
  return !!address && !isMdnsName(address)
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).byteLength
}


