import { badInput, MallaError } from '../core/errors.js'

/**
 * What malla needs from a WebRTC implementation: one connection carrying three reliable, ordered data
 * channels (the app's, the sync's and the files', see `RtcChannel`), set up without trickle (candidates are
 * gathered before a description is handed out, because descriptions travel through shared-state, where
 * every extra message costs a sync round).
 *
 * Signaling imports only this interface; the browser's own `RTCPeerConnection` and Node's implementation
 * are adapters in `browser/rtc` and `node/rtc`, and both run `test/conformance/rtc-suite.ts`.
 *
 * Errors: every failure is a `MallaError`, and the negotiation methods only ever reject (never throw).
 * `PEER` for a call in the wrong state or on a closed peer (the peer stays as it was), and for a remote
 * description that cannot be used or any other negotiation failure (the peer then ends with 'failed');
 * `TOO_LARGE` for a message over `maxMessageSize`; `BAD_INPUT` for bad options and empty messages.
 */

/** Why a connection ended, for logs and for the signaling layer's choice of what to do next. */
export type RtcCloseReason =
  | 'local' // close() was called
  | 'remote' // the other side closed the channel or its connection
  | 'failed' // ICE or DTLS failed, the channel errored, or a remote description was refused
  | 'timeout' // not open within the connect deadline

export interface RtcPeerEvents {
  /**
   * The data channel is open: send() works from now on. Fires at most once. The two sides do not open at
   * the same instant (SCTP comes up on one first), so each sends only after its own open.
   */
  open: () => void
  /** Text arrives as a string, binary as a plain `Uint8Array` (never a Buffer, Blob or ArrayBuffer). */
  message: (data: string | Uint8Array) => void
  /**
   * Fires exactly once per peer, whatever the path to the end (including close() before open, in which
   * case it fires before close() returns). No other event follows it.
   */
  close: (reason: RtcCloseReason, detail?: string) => void
  /** bufferedAmount fell to or below `lowWaterMark`; a sender that stopped on backpressure goes on. */
  drain: () => void
}

/**
 * One ordered, reliable data channel of a connection, with the connection's state and end: what a framing
 * layer (FramedChannel) needs. An `RtcPeer` is its first channel (negotiated id 0, for the app's messages);
 * `RtcPeer.syncChannel` is the second (id 1, for the overlay's sync) and `RtcPeer.fileChannel` the third
 * (id 2, for bulk transfers), so that neither a large sync nor a file queues the app's messages behind it.
 * All open and close with the connection; `close()` on any of them ends it.
 */
export interface RtcChannel {
  /**
   * Queues one message. Throws `MallaError('PEER')` unless the channel is open, `TOO_LARGE` over
   * `maxMessageSize`, `BAD_INPUT` for an empty message (werift drops those silently, so no adapter sends them).
   * Never blocks: watch `bufferedAmount` and wait for `drain`.
   */
  send(data: string | Uint8Array): void
  /** Bytes queued by send() and not yet handed to the network. */
  readonly bufferedAmount: number
  readonly lowWaterMark: number
  /**
   * The largest message send() takes, in bytes: the remote's advertised `a=max-message-size`, capped by
   * what this side's stack takes itself; 64 KiB (RFC 8841's default) while the remote description is not
   * applied yet or advertises none. Bigger payloads are the caller's to split.
   */
  readonly maxMessageSize: number
  /** 'new' until createOffer/acceptOffer, 'connecting' until the channel opens. */
  readonly state: 'new' | 'connecting' | 'open' | 'closed'
  /** Returns the function that removes the listener. A listener that throws does not disturb the peer. */
  on<E extends keyof RtcPeerEvents>(event: E, listener: RtcPeerEvents[E]): () => void
  /** Idempotent. Releases the underlying RTCPeerConnection; the other side sees close('remote'). */
  close(): void
}

export interface RtcPeer extends RtcChannel {
  /**
   * The connection's second channel (negotiated id 1), for sync traffic. Its `open` and `close` are the
   * connection's; its messages and `drain` are its own.
   */
  readonly syncChannel: RtcChannel
  /**
   * The connection's third channel (negotiated id 2, label `malla-files`), for bulk transfers (`FileTransfers`):
   * megabytes queued on it never hold back the app's messages or the overlay's sync, which have channels of
   * their own (each channel has its own send queue, and a stack hands its SCTP association only a little of
   * each at a time). Its `open` and `close` are the connection's; its messages, `bufferedAmount` and `drain`
   * are its own.
   */
  readonly fileChannel: RtcChannel
  /**
   * Offerer side: creates the data channel and the offer, waits until candidates are gathered (see
   * `RtcOptions.gather`), and returns the complete local SDP. Call once, on a new peer.
   */
  createOffer(): Promise<string>
  /**
   * Answerer side: applies a remote offer, gathers, returns the complete local answer SDP. Call once, on a
   * new peer. The connect deadline starts here.
   */
  acceptOffer(offerSdp: string): Promise<string>
  /**
   * Offerer side: applies the remote answer; the channel opens some time later (or `close` fires). The
   * connect deadline starts here: an offer may wait for its answer as long as signaling likes.
   */
  acceptAnswer(answerSdp: string): Promise<void>
  /**
   * The SHA-256 of the certificate the other end used in the DTLS handshake (its DER bytes), as 64 lowercase
   * hex digits, once the connection is open; undefined before that, or where the stack does not say. It must
   * equal the fingerprint in the other end's session description: the stack checks that itself, and the mesh
   * checks it again against the signed one (§18.2), so that a stack that did not would still be caught.
   */
  remoteCertificateSha256(): string | undefined
}

export interface RtcOptions {
  /**
   * STUN servers as URLs (`stun:10.13.0.1:3478`); on a mesh, the router's own responder. No TURN. Without
   * any, no server is contacted at all (werift's built-in Google default is overridden).
   */
  readonly stunUrls?: readonly string[]
  /**
   * When a gathered description is good enough to hand out. Waiting for "complete" costs ~140 ms in
   * Chromium although the host candidate exists at once; so a description goes out after `settleMs`
   * with no new candidate once it has a routable one (an IP address, not only an mDNS name), at once
   * when a server-reflexive one arrives (see the browser adapter), and always by `maxMs`.
   */
  readonly gather?: { readonly settleMs?: number; readonly maxMs?: number }
  /** From acceptAnswer/acceptOffer to open; after it the peer closes with reason `timeout`. */
  readonly connectTimeoutMs?: number
  /** `drain` fires when bufferedAmount falls to this many bytes. */
  readonly lowWaterMark?: number
  /**
   * Gather host candidates on exactly these local IP addresses instead of on every interface (Node only:
   * browsers pick their own and ignore this). Needed for loopback, which werift otherwise skips, and for
   * `veth` interfaces, which it skips too; werift also ignores IPv6 link-local addresses.
   */
  readonly hostAddresses?: readonly string[]
  /** Names this peer in the adapter's debug log (signaling passes the offer it belongs to). */
  readonly label?: string
}

/** Makes peers; each platform provides one. */
export type RtcFactory = (options?: RtcOptions) => RtcPeer

/** What an option left out means, the same in every adapter. */
export const RTC_DEFAULTS = {
  settleMs: 30,
  maxMs: 2_000,
  connectTimeoutMs: 10_000,
  lowWaterMark: 256 * 1024,
} as const

/**
 * Refuses, with `MallaError('PEER')`, a remote description no adapter could use: something other than
 * one SDP session with a data-channel section, ICE credentials, a SHA-256 fingerprint and a DTLS role
 * fitting its type. Stacks differ in what they accept (werift takes `"garbage"` as an answer and then
 * refuses the real one), so adapters check before handing a description to their stack.
 */
export function checkRemoteDescription(sdp: unknown, type: 'offer' | 'answer'): string {
  const refuse = (why: string) => new MallaError('PEER', `remote ${type} refused: ${why}`)
  if (typeof sdp !== 'string') throw refuse('not a string')
  if (sdp.length > 64 * 1024) throw refuse('over 64 KiB')
  const lines = sdp.split(/\r?\n/)
  if (lines[0] !== 'v=0') throw refuse('not an SDP session (no v=0 first line)')
  const has = (re: RegExp) => lines.some((l) => re.test(l))
  if (!has(/^m=application \d+ UDP\/DTLS\/SCTP webrtc-datachannel$/)) throw refuse('no data-channel section')
  if (!has(/^a=ice-ufrag:\S{4,256}$/) || !has(/^a=ice-pwd:\S{22,256}$/)) throw refuse('no ICE credentials')
  if (!has(/^a=fingerprint:sha-256 (?:[0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/)) throw refuse('no SHA-256 fingerprint')
  const setup = lines.find((l) => l.startsWith('a=setup:'))?.slice('a=setup:'.length)
  const roles = type === 'offer' ? ['actpass'] : ['active', 'passive']
  if (!setup || !roles.includes(setup)) throw refuse(`DTLS role ${setup ?? 'missing'} does not fit an ${type}`)
  return sdp
}

/**
 * The event plumbing adapters share. A listener's exception is rethrown from a microtask: it still
 * surfaces (as an uncaught error), but cannot skip the other listeners or unwind into the WebRTC stack
 * that delivered the event, whose state it would corrupt.
 */
export function peerEvents(): {
  on: RtcPeer['on']
  emit: <E extends keyof RtcPeerEvents>(event: E, ...args: Parameters<RtcPeerEvents[E]>) => void
  clear: () => void
} {
  type Listener = (...args: never[]) => void
  const listeners = new Map<keyof RtcPeerEvents, Set<Listener>>()
  return {
    on(event, listener) {
      let set = listeners.get(event)
      if (!set) listeners.set(event, (set = new Set()))
      const added = set
      added.add(listener)
      return () => void added.delete(listener)
    },
    emit(event, ...args) {
      for (const listener of [...(listeners.get(event) ?? [])]) {
        try {
          ;(listener as (...a: typeof args) => void)(...args)
        } catch (e) {
          queueMicrotask(() => {
            throw e
          })
        }
      }
    },
    clear: () => listeners.clear(),
  }
}

/** Refuses, with BAD_INPUT, options no adapter can use (every adapter checks with this). */
export function checkRtcOptions(o: RtcOptions): void {
  for (const url of o.stunUrls ?? []) if (!/^stun:\S+$/i.test(url)) throw badInput(`not a STUN URL: ${url}`)
  for (const [name, v] of [
    ['gather.settleMs', o.gather?.settleMs],
    ['gather.maxMs', o.gather?.maxMs],
    ['connectTimeoutMs', o.connectTimeoutMs],
    ['lowWaterMark', o.lowWaterMark],
  ] as const) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw badInput(`${name} must be a non-negative number`)
  }
}

/** What `peerEvents` returns: listeners by event, and the emitting side. */
export type PeerEvents = ReturnType<typeof peerEvents>
