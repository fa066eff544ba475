import { createNanoEvents, type Unsubscribe } from 'nanoevents'
import { badInput, MallaError } from '../core/errors.js'
import type { RtcChannel } from '../rtc/rtc-peer.js'
import { Incoming } from './incoming.js'
import { Outgoing } from './outgoing.js'
import { emitSafely, type FileSource, type IncomingTransfer, type OutgoingTransfer, type Transfer, type TransferLink } from './transfer.js'
import { MAX_CONTROL_CHARS, parseControl, parseData, sanitizeMime, sanitizeName, type ControlFrame } from './wire.js'

export type { FileSink, FileSource, FileTransfer, IncomingTransfer, OutgoingTransfer, TransferEnd, TransferEvents, TransferProgress, TransferState } from './transfer.js'
export type { TransferReason } from './wire.js'
export { sha256Stream, type StreamHash } from './sha256-stream.js'

export interface FileTransfersOptions {
  /** A connection's file channel (`MeshPeer.fileChannel`, `RtcPeer.fileChannel`): nothing else may use it. */
  readonly channel: RtcChannel
  /** Offers of larger files are declined at once (default 4 GiB). */
  readonly maxFileBytes?: number
  /**
   * Offers received and not answered yet, at most (default 8): more are declined at once ('busy'). This side
   * also keeps no more than this many of its own offers unanswered; the others wait to go out.
   */
  readonly maxPendingOffers?: number
  /**
   * Data frame size, header included (default 32 KiB): never above the channel's `maxMessageSize`. A message on a
   * data channel goes whole before the next one on any other channel of the connection, so a chat line may wait
   * for one frame; and the sender's window (§16) moves by frames: 32 KiB is 2.6 ms of a 100 Mbit/s link.
   */
  readonly chunkBytes?: number
  /** The sender waits for `drain` while this much is queued (default 1 MiB, or 4 × the channel's `lowWaterMark` if more). */
  readonly highWaterMark?: number
  /**
   * Bytes of a file this side receives that may be on their way and not yet in its sink (default 256 KiB): the
   * sender waits for this side's acks beyond it. It bounds what a file keeps queued ahead of everything else the
   * other side sends on the connection (a chat line waits behind at most this; a malla sender keeps less once the
   * link is full, paced by the delay of this side's acks, §16), and lets a slow sink slow the sender instead of failing.
   */
  readonly receiveWindow?: number
}

export interface FileTransfersEvents {
  /**
   * The other side offers a file: `accept(sink)` or `decline()` it. With no listener, every offer is declined.
   * Offers over `maxFileBytes`, beyond `maxPendingOffers` or with an impossible size never get here.
   */
  offer(incoming: IncomingTransfer): void
}

export interface FileTransfersStats {
  /** Control frames that were not frames at all: malformed, oversized, of an unknown type. */
  readonly ignored: number
  /** Well-formed control frames about no transfer in a state to take them (late, or made up). */
  readonly stale: number
  /** Data frames for no transfer that was receiving (unknown, not accepted, cancelled, complete, too short). */
  readonly dropped: number
  /** Offers declined without asking the app. */
  readonly declined: number
}

/** What `FileTransfersOptions` left out are. */
export const FILE_TRANSFER_DEFAULTS = Object.freeze({ maxFileBytes: 4 * 1024 ** 3, maxPendingOffers: 8, chunkBytes: 32 * 1024, highWaterMark: 1024 * 1024, receiveWindow: 256 * 1024 })
/** A data frame carries at least this much: smaller frames would cost more in headers than they carry. */
const MIN_CHUNK_BYTES = 1024

/**
 * Files over one data channel, both ways (docs/protocol.md §16). A receiver must accept each offer, so nobody
 * can push bytes at a peer; each file is hashed (SHA-256 in WebAssembly, or plain JS: pages on plain http have no WebCrypto)
 * on both sides, and is done only when the hashes match. One file streams at a time per direction; the others
 * wait their turn. Everything the other side sends is checked: a stranger's frames can fail or drop its own
 * transfers, never throw here.
 */
export class FileTransfers {
  private readonly channel: RtcChannel
  private readonly emitter = createNanoEvents<FileTransfersEvents>()
  private readonly maxFileBytes: number
  private readonly maxPendingOffers: number
  private readonly chunkBytes: number
  private readonly highWaterMark: number
  private readonly receiveWindow: number
  private readonly outgoing = new Map<number, Outgoing>()
  private readonly incoming = new Map<number, Incoming>()
  /** Accepted outgoing transfers, in the order of their accepts; the first streams. */
  private readonly ready: Outgoing[] = []
  private streaming = false
  /** Set while every transfer is being ended, so that no queued offer goes out on the way. */
  private ending = false
  private nextId = 1
  private off: Unsubscribe[] = []
  private readonly counts = { ignored: 0, stale: 0, dropped: 0, declined: 0 }
  private readonly link: TransferLink = { control: (frame) => this.control(frame) }

  constructor(options: FileTransfersOptions) {
    const o = { ...FILE_TRANSFER_DEFAULTS, ...definedOnly(options) }
    for (const [name, v, min] of [
      ['maxFileBytes', o.maxFileBytes, 0],
      ['maxPendingOffers', o.maxPendingOffers, 1],
      ['chunkBytes', o.chunkBytes, MIN_CHUNK_BYTES],
      ['highWaterMark', o.highWaterMark, 1],
      ['receiveWindow', o.receiveWindow, MIN_CHUNK_BYTES],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < min) throw badInput(`${name} must be an integer of at least ${min}`)
    }
    this.channel = options.channel
    this.maxFileBytes = o.maxFileBytes
    this.maxPendingOffers = o.maxPendingOffers
    this.chunkBytes = o.chunkBytes
    this.receiveWindow = o.receiveWindow
    this.highWaterMark = options.highWaterMark ?? Math.max(FILE_TRANSFER_DEFAULTS.highWaterMark, 4 * options.channel.lowWaterMark)
  }

  on<E extends keyof FileTransfersEvents>(event: E, listener: FileTransfersEvents[E]): Unsubscribe {
    return this.emitter.on(event, listener)
  }

  /** Listens to the channel; until then nothing is received, and nothing can be sent. */
  start(): void {
    if (this.off.length) return
    const channel = this.channel
    this.off = [
      channel.on('message', (data) => (typeof data === 'string' ? this.onControl(data) : this.onData(data))),
      channel.on('close', () => this.endAll('closed')),
    ]
  }

  /** Cancels every transfer (telling the other side) and stops listening. */
  stop(): void {
    this.endAll('stopped')
    for (const off of this.off.splice(0)) off()
  }

  /**
   * Offers `source` to the other side; it streams once accepted and its turn comes. Throws `MallaError('PEER')`
   * unless started and the channel is open, `BAD_INPUT` for a size that is not a safe non-negative integer.
   * The name is sanitized as the receiver would (see `sanitizeName`).
   */
  send(source: FileSource, meta: { readonly name: string; readonly mime?: string }): OutgoingTransfer {
    if (!this.off.length || this.channel.state !== 'open') throw new MallaError('PEER', 'file transfers need a started FileTransfers on an open channel')
    if (!Number.isSafeInteger(source.size) || source.size < 0) throw badInput(`not a file size: ${source.size}`)
    const transfer = new Outgoing(this.nextId++ >>> 0, sanitizeName(meta.name), sanitizeMime(meta.mime), source, this.link)
    this.outgoing.set(transfer.id, transfer)
    transfer.on('end', () => {
      this.outgoing.delete(transfer.id)
      this.offerNext()
    })
    this.offerNext()
    return transfer
  }

  stats(): FileTransfersStats {
    return { ...this.counts }
  }

  private onControl(text: string): void {
    const frame = parseControl(text)
    if (!frame) return void this.counts.ignored++
    let taken = false
    switch (frame.t) {
      case 'offer':
        return this.onOffer(frame)
      case 'accept': {
        const t = this.outgoing.get(frame.id)
        taken = !!t?.onAccept(frame.window, frame.ackEvery)
        if (t && taken) {
          this.ready.push(t)
          this.offerNext()
          void this.pump()
        }
        break
      }
      case 'ack':
        taken = !!this.outgoing.get(frame.id)?.onAck(frame.n)
        break
      case 'decline':
        taken = !!this.outgoing.get(frame.id)?.onDecline(frame.reason)
        break
      case 'received':
        taken = !!this.outgoing.get(frame.id)?.onReceived(frame.sha256)
        break
      case 'cancel': {
        const t = this.incoming.get(frame.id)
        t?.onCancel(frame.reason)
        taken = !!t
        break
      }
      case 'done':
        taken = !!this.incoming.get(frame.id)?.onDone(frame.sha256)
        break
    }
    if (!taken) this.counts.stale++
  }

  private onOffer(offer: Extract<ControlFrame, { t: 'offer' }>): void {
    const { id, name, size, mime } = offer
    if (this.incoming.has(id)) return void this.counts.ignored++
    const pending = [...this.incoming.values()].filter((t) => t.state === 'offered').length
    const refusal = !Number.isSafeInteger(size) || size < 0 ? 'bad-offer'
      : size > this.maxFileBytes ? 'too-large'
      : pending >= this.maxPendingOffers ? 'busy'
      : !this.emitter.events.offer?.length ? 'declined'
      : undefined
    if (refusal) {
      this.counts.declined++
      return this.control({ t: 'decline', id, reason: refusal })
    }
    const transfer = new Incoming(id, name, size, mime, this.link, this.receiveWindow)
    this.incoming.set(id, transfer)
    transfer.on('end', () => this.incoming.delete(id))
    emitSafely(this.emitter.events.offer, transfer)
  }

  private onData(frame: Uint8Array): void {
    const data = parseData(frame)
    const transfer = data && this.incoming.get(data.id)
    if (!data || !transfer?.take(data.bytes)) this.counts.dropped++
  }

  /** Sends queued offers while fewer than `maxPendingOffers` of ours are unanswered. */
  private offerNext(): void {
    if (this.ending) return
    let unanswered = 0
    for (const t of this.outgoing.values()) if (t.unanswered) unanswered++
    for (const t of this.outgoing.values()) {
      if (unanswered >= this.maxPendingOffers) return
      if (t.queued) {
        t.offer()
        unanswered++
      }
    }
  }

  /** Streams accepted transfers one after the other; only one runs at a time. */
  private async pump(): Promise<void> {
    if (this.streaming) return
    this.streaming = true
    try {
      const pacing = { frameBytes: Math.min(this.chunkBytes, this.channel.maxMessageSize), highWaterMark: this.highWaterMark }
      for (let t = this.ready.shift(); t; t = this.ready.shift()) await t.stream(this.channel, pacing)
    } finally {
      this.streaming = false
    }
  }

  private endAll(reason: 'closed' | 'stopped'): void {
    this.ready.length = 0
    this.ending = true
    const all: Transfer[] = [...this.outgoing.values(), ...this.incoming.values()]
    for (const t of all) t.drop(reason)
    this.ending = false
  }

  private control(frame: ControlFrame): void {
    if (this.channel.state !== 'open') return
    const text = JSON.stringify(frame)
    if (text.length > MAX_CONTROL_CHARS) return
    try {
      this.channel.send(text)
    } catch {
      // The channel closed under us: its close event ends every transfer.
    }
  }
}

/** The options that were given (an explicit `undefined` means the default, as for an absent one). */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
