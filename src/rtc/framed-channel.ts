import { createNanoEvents, type Unsubscribe } from 'nanoevents'
import { MallaError } from '../core/errors.js'
import type { RtcChannel } from './rtc-peer.js'

/** What an app sends and receives on a connection. */
export type MessageValue = string | Uint8Array | JsonValue
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }
export type MessageKind = 'text' | 'json' | 'binary'

export interface Progress {
  readonly id: number
  readonly direction: 'in' | 'out'
  readonly kind: MessageKind
  readonly bytes: number
  readonly total: number
}

export interface FramedChannelEvents {
  message(value: MessageValue, kind: MessageKind): void
  /** A large message moved by one more chunk. */
  progress(progress: Progress): void
  /** The peer broke the framing (or sent more than allowed): the connection is closed. */
  error(error: MallaError): void
}

export interface FramedChannelOptions {
  /** Chunk size for large messages; 16 KiB crosses every WebRTC stack unharmed. */
  readonly chunkBytes?: number
  /** Largest message accepted from the peer (default 64 MiB): a peer cannot make this side allocate more. */
  readonly maxMessageBytes?: number
  /** send() waits for the channel to drain while more than this is queued (default 1 MiB). */
  readonly highWaterMark?: number
  /**
   * A keepalive goes out after this long without sending anything (default 2 s), and the connection is
   * declared dead after `deadAfterMs` without receiving anything (default 8 s; 0 turns both off). Browsers
   * tell nothing when a tab is closed or a phone walks away: without this a dead peer holds its slot for
   * the 15-30 s that ICE takes to give up.
   */
  readonly keepAliveMs?: number
  readonly deadAfterMs?: number
  /** Called once when the peer is declared dead, just before the connection is closed. */
  readonly onDead?: () => void
}

/**
 * Typed messages over one channel of a connection (`RtcChannel`): text, JSON and binary, any size. Stacks drop or refuse large data
 * channel messages (`@roamhq/wrtc` silently over 256 KiB, werift over 64 KiB by default), so a message over
 * one chunk is cut into chunks; the channel is ordered and reliable, so chunks need no reordering.
 *
 * Frames (version 1): text `"t" + text`, JSON `"j" + JSON`; binary `[0] + bytes`; a chunk
 * `[1, kind, id(4), total(4)] + bytes`, the chunks of one message following each other in order; `"p"`,
 * a keepalive, sent by a side that has sent nothing for a while.
 */
export class FramedChannel {
  private readonly emitter = createNanoEvents<FramedChannelEvents>()
  private readonly chunkBytes: number
  private readonly maxMessageBytes: number
  private readonly highWaterMark: number
  private nextId = 1
  private incoming: { id: number; kind: MessageKind; buffer: Uint8Array; received: number } | undefined
  /** Sends of large messages run one after the other, so their chunks never interleave. */
  private queue: Promise<void> = Promise.resolve()
  private readonly off: Unsubscribe
  private lastSent = Date.now()
  private lastReceived = Date.now()
  private timer: ReturnType<typeof setInterval> | undefined

  constructor(
    readonly peer: RtcChannel,
    options: FramedChannelOptions = {},
  ) {
    this.chunkBytes = options.chunkBytes ?? 16 * 1024
    this.maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024
    this.highWaterMark = options.highWaterMark ?? 1024 * 1024
    this.off = peer.on('message', (data) => {
      this.lastReceived = Date.now()
      this.receive(data)
    })
    const keepAliveMs = options.keepAliveMs ?? 2000
    const deadAfterMs = options.deadAfterMs ?? 8000
    if (keepAliveMs > 0 && deadAfterMs > 0) {
      this.timer = setInterval(() => {
        if (this.peer.state !== 'open') return
        const now = Date.now()
        if (now - this.lastReceived > deadAfterMs) {
          this.close()
          options.onDead?.()
          this.peer.close()
          return
        }
        if (now - this.lastSent >= keepAliveMs) this.sendRaw('p')
      }, Math.min(keepAliveMs, deadAfterMs / 2))
    }
  }

  on<E extends keyof FramedChannelEvents>(event: E, listener: FramedChannelEvents[E]): Unsubscribe {
    return this.emitter.on(event, listener)
  }

  /**
   * Sends one message; resolves once all of it is queued on the channel. Messages arrive in the order
   * their send() was called. Plain objects and arrays go as JSON; strings as text; Uint8Array as binary.
   */
  send(value: MessageValue, onProgress?: (p: Progress) => void): Promise<void> {
    const [kind, bytes, text] = encode(value)
    const job = this.queue.then(() => this.sendNow(kind, bytes, text, onProgress))
    this.queue = job.catch(() => {})
    return job
  }

  close(): void {
    this.off()
    clearInterval(this.timer)
  }

  private sendRaw(frame: string | Uint8Array): void {
    this.lastSent = Date.now()
    this.peer.send(frame)
  }

  private async sendNow(kind: MessageKind, bytes: Uint8Array, text: string | undefined, onProgress?: (p: Progress) => void): Promise<void> {
    if (bytes.byteLength + 1 <= this.chunkBytes) {
      // Small messages wait for room too: a sender of many of them (an app's own chunks) would otherwise fill
      // the channel's queue until the browser refuses the send and drops the message.
      if (this.peer.bufferedAmount > this.highWaterMark) await this.drained()
      if (text === undefined) this.sendRaw(prefixed(0, bytes))
      else this.sendRaw((kind === 'json' ? 'j' : 't') + text)
      return
    }
    const id = this.nextId++
    const total = bytes.byteLength
    for (let offset = 0; offset < total; offset += this.chunkBytes) {
      if (this.peer.bufferedAmount > this.highWaterMark) await this.drained()
      const piece = bytes.subarray(offset, Math.min(total, offset + this.chunkBytes))
      const frame = new Uint8Array(10 + piece.byteLength)
      const view = new DataView(frame.buffer)
      frame[0] = 1
      frame[1] = KIND_CODE[kind]
      view.setUint32(2, id)
      view.setUint32(6, total)
      frame.set(piece, 10)
      this.sendRaw(frame)
      const progress: Progress = { id, direction: 'out', kind, bytes: offset + piece.byteLength, total }
      onProgress?.(progress)
      this.emitter.emit('progress', progress)
    }
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const offDrain = this.peer.on('drain', () => (offDrain(), offClose(), resolve()))
      const offClose = this.peer.on('close', () => (offDrain(), offClose(), reject(new MallaError('PEER', 'the connection closed during a send'))))
    })
  }

  private receive(data: string | Uint8Array): void {
    try {
      if (typeof data === 'string') {
        if (this.incoming) throw framing('a message arrived in the middle of a chunked one')
        if (data === 'p') return // keepalive
        const body = data.slice(1)
        if (data[0] === 't') return this.deliver(body, 'text')
        if (data[0] === 'j') return this.deliver(JSON.parse(body) as JsonValue, 'json')
        throw framing(`unknown text frame ${JSON.stringify(data.slice(0, 1))}`)
      }
      if (data[0] === 0 && !this.incoming) return this.deliver(data.slice(1), 'binary')
      if (data[0] !== 1 || data.byteLength < 11) throw framing('unknown or short binary frame')
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
      const kind = CODE_KIND[data[1] as number]
      const id = view.getUint32(2)
      const total = view.getUint32(6)
      if (kind === undefined) throw framing(`unknown message kind ${data[1]}`)
      if (!this.incoming) {
        if (total > this.maxMessageBytes) throw new MallaError('TOO_LARGE', `the peer sent a ${total} byte message, over the ${this.maxMessageBytes} byte limit`)
        this.incoming = { id, kind, buffer: new Uint8Array(total), received: 0 }
      }
      const m = this.incoming
      if (m.id !== id || m.kind !== kind || m.buffer.byteLength !== total) throw framing('chunks of two messages interleaved')
      const piece = data.subarray(10)
      if (m.received + piece.byteLength > total) throw framing('more chunk bytes than the message announced')
      m.buffer.set(piece, m.received)
      m.received += piece.byteLength
      this.emitter.emit('progress', { id, direction: 'in', kind, bytes: m.received, total })
      if (m.received < total) return
      this.incoming = undefined
      if (kind === 'binary') this.deliver(m.buffer, 'binary')
      else {
        const text = decoder.decode(m.buffer)
        this.deliver(kind === 'json' ? (JSON.parse(text) as JsonValue) : text, kind)
      }
    } catch (e) {
      const error = e instanceof MallaError ? e : framing((e as Error).message)
      this.emitter.emit('error', error)
      this.peer.close()
    }
  }

  private deliver(value: MessageValue, kind: MessageKind): void {
    this.emitter.emit('message', value, kind)
  }
}

const KIND_CODE: Record<MessageKind, number> = { text: 0, json: 1, binary: 2 }
const CODE_KIND: Record<number, MessageKind> = { 0: 'text', 1: 'json', 2: 'binary' }
const encoder = new TextEncoder()
const decoder = new TextDecoder()

function framing(message: string): MallaError {
  return new MallaError('PEER', `bad frame from the peer: ${message}`)
}

/** The message's kind and UTF-8 bytes (what its size is counted in), and its text unless it is binary. */
function encode(value: MessageValue): [MessageKind, Uint8Array, string | undefined] {
  if (typeof value === 'string') return ['text', encoder.encode(value), value]
  if (value instanceof Uint8Array) return ['binary', value, undefined]
  const text = JSON.stringify(value)
  if (text === undefined) throw new MallaError('BAD_INPUT', 'this value cannot be sent as JSON')
  return ['json', encoder.encode(text), text]
}

function prefixed(tag: number, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength + 1)
  out[0] = tag
  out.set(bytes, 1)
  return out
}
