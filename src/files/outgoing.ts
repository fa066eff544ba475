import type { RtcChannel } from '../rtc/rtc-peer.js'
import { Transfer, type FileSource, type OutgoingTransfer, type TransferLink } from './transfer.js'
import { dataFrame, DATA_HEADER_BYTES, type TransferReason } from './wire.js'
import { sha256Stream } from './sha256-stream.js'
import { SendWindow } from './send-window.js'

/** How the channel is fed: frames of `frameBytes` (header included) while less than `highWaterMark` is queued. */
export interface StreamPacing {
  readonly frameBytes: number
  readonly highWaterMark: number
}

/** The source is read in slices of about this much and cut into frames: few reads, little held at once. */
const READ_BYTES = 1024 * 1024
/** Frames sent and not acknowledged whose send times are kept, at most (for the round trips the window is paced by). */
const MAX_TIMED_FRAMES = 256

/**
 * A file this side offers. It waits for the receiver's accept, then for its turn on the channel (one transfer
 * streams at a time), then streams; it is done when the receiver confirms the hash.
 */
export class Outgoing extends Transfer implements OutgoingTransfer {
  /**
   * queued: the offer waits for room among the unanswered; offered: it is out; accepted: waits for its turn;
   * streaming; sent: every byte and `done` are queued, and it waits for the receiver's `received`.
   */
  private phase: 'queued' | 'offered' | 'accepted' | 'streaming' | 'sent' = 'queued'
  private digest: string | undefined
  /** The receiver's window (§16): bytes sent and not acknowledged, at most; none from a receiver that keeps no window. */
  private window = Infinity
  /** How often the receiver acks (bytes its store takes between acks), when it says so: then the window is paced. */
  private ackEvery: number | undefined
  /** What of the receiver's window this side uses, by the round trips of its acks; made when streaming starts. */
  private pace: SendWindow | undefined
  /** [end of a frame in the file, when it was sent] for frames not acknowledged yet, oldest first. */
  private sentAt: Array<[number, number]> = []
  private acked = 0
  /** Wakes the stream waiting for an ack. */
  private wake: (() => void) | undefined

  constructor(
    id: number,
    name: string,
    mime: string,
    private readonly source: FileSource,
    link: TransferLink,
  ) {
    super(id, name, source.size, mime, link)
  }

  /** Whether the offer is out and unanswered (it counts against the pending-offer limit). */
  get unanswered(): boolean {
    return this.phase === 'offered' && !this.ended
  }

  /** Whether the offer still waits to go out. */
  get queued(): boolean {
    return this.phase === 'queued' && !this.ended
  }

  cancel(): void {
    this.stop('cancelled')
  }

  drop(reason: 'closed' | 'stopped'): void {
    if (reason === 'stopped') this.stop('stopped')
    else this.finish('closed', undefined)
  }

  /** Sends the offer. */
  offer(): void {
    if (!this.queued) return
    this.phase = 'offered'
    this.link.control({ t: 'offer', id: this.id, name: this.name, size: this.size, mime: this.mime })
  }

  /**
   * The receiver accepted, with its window if it keeps one and how often it acks if it says; false when there was
   * no offer of this one waiting for that.
   */
  onAccept(window: number | undefined, ackEvery?: number): boolean {
    if (!this.unanswered) return false
    if (window !== undefined) {
      this.window = window
      this.ackEvery = ackEvery
    }
    this.phase = 'accepted'
    this.current = 'sending'
    return true
  }

  /** The receiver declined or stopped the transfer, for `reason` as it said. */
  onDecline(reason: TransferReason | undefined): boolean {
    if (this.queued) return false
    return this.finish(reason ?? 'declined', 'remote')
  }

  /**
   * The receiver's sink has taken the first `n` bytes; false when that says nothing new (an old ack) or is not
   * true (more than was sent). Either is the receiver's own loss: it can only slow its own transfer.
   */
  onAck(n: number): boolean {
    if ((this.phase !== 'streaming' && this.phase !== 'sent') || this.ended || n <= this.acked || n > this.moved) return false
    let sent: number | undefined
    while (this.sentAt.length && (this.sentAt[0] as [number, number])[0] <= n) sent = (this.sentAt.shift() as [number, number])[1]
    if (sent !== undefined) {
      const now = performance.now()
      this.pace?.onAck(now - sent, n - this.acked, now)
    }
    this.acked = n
    this.wake?.()
    return true
  }

  /** The receiver has it all and it hashed to `hex`; false when nothing was waiting for that. */
  onReceived(hex: string): boolean {
    if (this.phase !== 'sent' || this.ended) return false
    if (hex === this.digest) this.finishDone(hex)
    else this.finish('hash-mismatch', 'remote')
    return true
  }

  /**
   * Streams the file on `channel`, then `done` with its hash. Never rejects; returns when the bytes are all
   * queued or the transfer has ended, so that the next one may start.
   */
  async stream(channel: RtcChannel, pacing: StreamPacing): Promise<void> {
    if (this.phase !== 'accepted' || this.ended) return
    this.phase = 'streaming'
    this.startMeter()
    const hash = await sha256Stream()
    if (this.ended) return
    const payload = pacing.frameBytes - DATA_HEADER_BYTES
    // A receiver that says how often it acks lets the window shrink to what keeps its acks coming.
    if (this.ackEvery !== undefined && Number.isFinite(this.window)) this.pace = new SendWindow({ frameBytes: payload, minBytes: this.ackEvery + payload, maxBytes: this.window })
    // The next slice is read while this one is sent: a page reads a File through its browser's blob storage
    // (a round trip to another process), and the channel would idle during each read.
    const readAt = (offset: number) => {
      const want = Math.min(READ_BYTES, this.size - offset)
      return this.source.read(offset, want).then(
        (slice) => ({ slice, want }),
        () => undefined,
      )
    }
    // Frames are filled from the slices, whatever their sizes (a stream gives what it has): each one is copied
    // once anyway, to put the id in front, so a frame may take the end of one slice and the start of the next.
    let frame = dataFrame(this.id, Math.min(payload, this.size))
    let filled = 0
    try {
      let pending = this.size > 0 ? readAt(0) : undefined
      for (let offset = 0; offset < this.size; ) {
        const got = await pending
        if (this.ended) return
        if (got === undefined) return this.stop('source-failed')
        const { slice, want } = got
        // A source that returns nothing (the file shrank) or more than asked cannot be sent as offered.
        if (!(slice instanceof Uint8Array) || slice.byteLength === 0 || slice.byteLength > want) return this.stop('source-failed')
        const next = offset + slice.byteLength
        pending = next < this.size ? readAt(next) : undefined
        for (let at = 0; at < slice.byteLength; ) {
          const room = frame.byteLength - DATA_HEADER_BYTES - filled
          const n = Math.min(room, slice.byteLength - at)
          frame.set(slice.subarray(at, at + n), DATA_HEADER_BYTES + filled)
          filled += n
          at += n
          if (n < room) break
          const piece = frame.subarray(DATA_HEADER_BYTES)
          if (channel.bufferedAmount >= pacing.highWaterMark) await drained(channel)
          // Within the receiver's window; one frame always goes, whatever the window, so that none is too small.
          while (!this.ended && this.moved > this.acked && this.moved - this.acked + piece.byteLength > (this.pace?.bytes ?? this.window)) await this.acknowledged(channel)
          if (this.ended) return
          channel.send(frame)
          if (this.pace) {
            if (this.sentAt.length >= MAX_TIMED_FRAMES) this.sentAt.shift()
            this.sentAt.push([this.moved + piece.byteLength, performance.now()])
          }
          // Hashed a frame at a time, after it is queued: no long stretch of the page's main thread goes to hashing.
          hash.update(piece)
          this.advance(piece.byteLength)
          const left = this.size - this.moved
          if (left > 0) frame = dataFrame(this.id, Math.min(payload, left))
          filled = 0
        }
        offset = next
      }
      this.digest = hash.hex()
      this.phase = 'sent'
      this.link.control({ t: 'done', id: this.id, sha256: this.digest })
    } catch {
      // send() refused a frame: the channel is not open any more.
      this.finish('closed', undefined)
    }
  }

  /** Resolves at the next ack, or when the channel closes or the transfer ends. */
  private acknowledged(channel: RtcChannel): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.wake = undefined
        offClose()
        offEnd()
        resolve()
      }
      const offClose = channel.on('close', done)
      const offEnd = this.on('end', done)
      this.wake = done
    })
  }

  protected release(): void {
    try {
      void Promise.resolve(this.source.close?.()).catch(() => {})
    } catch {
      // A source that cannot close has nothing more to give either.
    }
  }

  /** Ends the transfer here and tells the receiver, if the offer went out. */
  private stop(reason: TransferReason): void {
    const told = this.phase !== 'queued'
    if (this.finish(reason, 'local') && told) this.link.control({ t: 'cancel', id: this.id, reason })
  }
}

/**
 * Resolves when `channel` drains or closes. Only called above the high-water mark, which is above the channel's
 * `lowWaterMark`, so a `drain` is on its way (no polling).
 */
function drained(channel: RtcChannel): Promise<void> {
  if (channel.bufferedAmount <= channel.lowWaterMark || channel.state !== 'open') return Promise.resolve()
  return new Promise((resolve) => {
    const offDrain = channel.on('drain', done)
    const offClose = channel.on('close', done)
    function done() {
      offDrain()
      offClose()
      resolve()
    }
  })
}
