/**
 * How much file data a sender keeps on its way: as little as keeps the link busy, so that a chat line or a sync
 * sent on the same connection waits behind little. The receiver's window (§16) bounds it in bytes, but the same
 * bytes are 20 ms on a 100 Mbit/s link and 100 ms on a 20 Mbit/s one, and a mesh's radios are slow: once the link
 * is full, every byte more in flight only waits in the bottleneck's queue, ahead of everything else. So the
 * sender also watches the time from sending a frame to its ack: its lowest value is the path's own delay, and
 * what each takes above that is queue. The window grows while the queue stays under a target and shrinks above it,
 * in proportion (LEDBAT's controller, RFC 6817, fed by acks instead of one-way timestamps): a file takes what a
 * link leaves free, and keeps about `targetMs` of queue once it is full.
 */

export interface SendWindowOptions {
  /** The bytes of one data frame's payload: the window's step. */
  readonly frameBytes: number
  /** The least (default one frame): what the receiver must have on its way to send its next ack. */
  readonly minBytes?: number
  /** The most: the receiver's window. */
  readonly maxBytes: number
  /** The queueing delay the window aims at, in ms (default 5). */
  readonly targetMs?: number
}

/** The path's own delay is the lowest round trip seen over the last one or two of these (a route may change). */
const BASE_EPOCH_MS = 10_000
/** At most one frame more or less per window's worth of acknowledged bytes (LEDBAT's GAIN of 1). */
const GAIN = 1

export class SendWindow {
  private readonly frame: number
  private readonly min: number
  private readonly max: number
  private readonly target: number
  private current: number
  /** The lowest round trip of this epoch, and of the one before. */
  private baseNow = Infinity
  private basePrev = Infinity
  private epochStart = -Infinity

  constructor(options: SendWindowOptions) {
    this.frame = Math.max(1, options.frameBytes)
    this.max = Math.max(1, options.maxBytes)
    this.min = Math.min(this.max, Math.max(1, options.minBytes ?? this.frame))
    this.target = options.targetMs ?? 5
    // The whole window at first: a file starts as fast as the receiver allows, and gives way once a queue shows.
    this.current = this.max
  }

  /** Bytes the sender may have sent and not acknowledged. */
  get bytes(): number {
    return Math.floor(this.current)
  }

  /** An ack for `ackedBytes` more bytes arrived `rttMs` after the frame it acknowledges was sent, at `now` (ms). */
  onAck(rttMs: number, ackedBytes: number, now: number): void {
    if (!(rttMs >= 0) || !(ackedBytes > 0)) return
    if (now - this.epochStart >= BASE_EPOCH_MS) {
      this.basePrev = this.baseNow
      this.baseNow = rttMs
      this.epochStart = now
    } else if (rttMs < this.baseNow) {
      this.baseNow = rttMs
    }
    // Each round trip as it is, unfiltered: LEDBAT's filter (the lowest of the last few) spans much of a window of
    // a few frames here, and showed no queue on a full link. One slow ack moves the window by less than a frame.
    const queue = rttMs - Math.min(this.baseNow, this.basePrev)
    const offTarget = Math.max(-1, (this.target - queue) / this.target)
    this.current += (GAIN * offTarget * ackedBytes * this.frame) / this.current
    this.current = Math.min(this.max, Math.max(this.min, this.current))
  }
}
