/**
 * The frames of Trystero-style actions on a malla connection's app channel (docs/protocol.md §19). Each frame
 * is one binary message of the connection's `FramedChannel`, small enough that the channel never cuts it
 * (so its own reassembly never holds more than one frame): a payload larger than one frame is cut here, into
 * chunks of one transfer, which lets a chat line pass between the chunks of a file.
 *
 * - `DATA`: `[1, flags, id(u32)]`, then in a transfer's first chunk `total(u32), nameLength(u8), name,
 *   metaLength(u16), meta`, then payload bytes. Flags: bit 0 first chunk, bit 1 last chunk, bit 2 metadata
 *   present, bits 4-5 the payload's kind (0 text, 1 JSON, 2 binary). `id` numbers the sender's transfers.
 * - `PING` `[2, id(u32)]`, answered by `PONG` `[3, id(u32)]`.
 *
 * Everything decoded here comes from a stranger: decoding never throws, it returns undefined.
 */

/** Trystero 0.25's limit on an action's name, in UTF-8 bytes. */
export const MAX_ACTION_NAME_BYTES = 32
/**
 * Largest frame: the FramedChannel sends a message as one frame when it is below its 16 KiB chunk with its
 * one-byte tag; larger ones it would chunk and reassemble itself.
 */
export const MAX_FRAME_BYTES = 16 * 1024 - 1
/** Metadata must fit in a transfer's first chunk, beside its header. */
export const MAX_META_BYTES = 4096

export type PayloadKind = 'text' | 'json' | 'binary'

export const DATA = 1
export const PING = 2
export const PONG = 3

const FIRST = 1
const LAST = 2
const HAS_META = 4
const KIND_SHIFT = 4
const KINDS: readonly PayloadKind[] = ['text', 'json', 'binary']
/** `[type, flags, id]`: every DATA frame starts so. */
const HEAD = 6

export interface FirstChunk {
  readonly type: 'data'
  readonly first: true
  readonly last: boolean
  readonly id: number
  readonly kind: PayloadKind
  readonly total: number
  readonly name: string
  /** The metadata's JSON text, when the sender gave metadata. */
  readonly meta: string | undefined
  readonly bytes: Uint8Array
}

export interface NextChunk {
  readonly type: 'data'
  readonly first: false
  readonly last: boolean
  readonly id: number
  readonly bytes: Uint8Array
}

export type Frame = FirstChunk | NextChunk | { readonly type: 'ping'; readonly id: number } | { readonly type: 'pong'; readonly id: number }

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export const utf8 = (text: string): Uint8Array => encoder.encode(text)

/**
 * Cuts one payload into the DATA frames of transfer `id`. `name` and `meta` are UTF-8 bytes the caller has
 * checked against their limits.
 */
export function dataFrames(id: number, kind: PayloadKind, name: Uint8Array, meta: Uint8Array | undefined, payload: Uint8Array): Uint8Array[] {
  const firstHead = HEAD + 4 + 1 + name.byteLength + 2 + (meta?.byteLength ?? 0)
  const frames: Uint8Array[] = []
  let offset = 0
  do {
    const first = offset === 0
    const room = MAX_FRAME_BYTES - (first ? firstHead : HEAD)
    const piece = payload.subarray(offset, Math.min(payload.byteLength, offset + room))
    offset += piece.byteLength
    const last = offset >= payload.byteLength
    const frame = new Uint8Array((first ? firstHead : HEAD) + piece.byteLength)
    const view = new DataView(frame.buffer)
    frame[0] = DATA
    frame[1] = (first ? FIRST : 0) | (last ? LAST : 0) | (meta ? HAS_META : 0) | (KINDS.indexOf(kind) << KIND_SHIFT)
    view.setUint32(2, id)
    let at = HEAD
    if (first) {
      view.setUint32(at, payload.byteLength)
      frame[at + 4] = name.byteLength
      frame.set(name, at + 5)
      at += 5 + name.byteLength
      view.setUint16(at, meta?.byteLength ?? 0)
      if (meta) frame.set(meta, at + 2)
      at += 2 + (meta?.byteLength ?? 0)
    }
    frame.set(piece, at)
    frames.push(frame)
  } while (offset < payload.byteLength)
  return frames
}

export function pingFrame(type: typeof PING | typeof PONG, id: number): Uint8Array {
  const frame = new Uint8Array(5)
  frame[0] = type
  new DataView(frame.buffer).setUint32(1, id)
  return frame
}

/** The frame in `data`, or undefined for anything that is not one. */
export function decodeFrame(data: Uint8Array): Frame | undefined {
  if (data.byteLength > MAX_FRAME_BYTES || data.byteLength < 5) return undefined
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const type = data[0]
  if (type === PING || type === PONG) return data.byteLength !== 5 ? undefined : type === PING ? { type: 'ping', id: view.getUint32(1) } : { type: 'pong', id: view.getUint32(1) }
  if (type !== DATA || data.byteLength < HEAD) return undefined
  const flags = data[1] as number
  const id = view.getUint32(2)
  const last = (flags & LAST) !== 0
  if ((flags & FIRST) === 0) return { type: 'data', first: false, last, id, bytes: data.subarray(HEAD) }
  const kind = KINDS[flags >> KIND_SHIFT]
  if (kind === undefined || data.byteLength < HEAD + 5) return undefined
  const total = view.getUint32(HEAD)
  const nameLength = data[HEAD + 4] as number
  let at = HEAD + 5
  if (nameLength === 0 || nameLength > MAX_ACTION_NAME_BYTES || data.byteLength < at + nameLength + 2) return undefined
  const name = text(data.subarray(at, at + nameLength))
  at += nameLength
  const metaLength = view.getUint16(at)
  at += 2
  if (metaLength > MAX_META_BYTES || data.byteLength < at + metaLength) return undefined
  const meta = (flags & HAS_META) !== 0 ? text(data.subarray(at, at + metaLength)) : undefined
  if (name === undefined || ((flags & HAS_META) !== 0 && meta === undefined)) return undefined
  return { type: 'data', first: true, last, id, kind, total, name, meta, bytes: data.subarray(at + metaLength) }
}

function text(bytes: Uint8Array): string | undefined {
  try {
    return decoder.decode(bytes)
  } catch {
    return undefined
  }
}
