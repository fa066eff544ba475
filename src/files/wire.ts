/**
 * The file-transfer wire format (docs/protocol.md §16): control frames are JSON text, data frames binary. Each
 * control frame travels one way only, so an id names one transfer without saying whose: `offer`, `cancel` and
 * `done` go from a transfer's sender (ids in its sender's space), `accept`, `ack`, `decline` and `received` from its
 * receiver, about the sender's id. Everything read here comes from a stranger: parsing never throws.
 */

/** Why a transfer ended other than done. The first group are choices (the transfer ends 'cancelled'), the rest faults ('failed'). */
export type TransferReason =
  | 'declined' // the receiver said no
  | 'cancelled' // a person cancelled
  | 'stopped' // FileTransfers.stop()
  | 'too-large' // declined: over the receiver's maxFileBytes
  | 'busy' // declined: the receiver has too many offers unanswered
  | 'bad-offer' // declined: the size is not a safe non-negative integer
  | 'size-exceeded' // more bytes than the offer declared
  | 'incomplete' // `done` before all the bytes arrived
  | 'hash-mismatch' // the bytes received do not hash to what the sender said
  | 'sink-failed' // the receiving sink threw
  | 'sink-too-slow' // the sink fell too far behind the channel
  | 'source-failed' // reading the file to send failed
  | 'closed' // the channel closed (never on the wire)

const CHOICES: readonly TransferReason[] = ['declined', 'cancelled', 'stopped', 'too-large', 'busy']
const FAULTS: readonly TransferReason[] = ['bad-offer', 'size-exceeded', 'incomplete', 'hash-mismatch', 'sink-failed', 'sink-too-slow', 'source-failed']

/** Whether a transfer that ended for `reason` was cancelled (a choice) or failed (a fault, or the channel's end). */
export const endStateOf = (reason: TransferReason): 'cancelled' | 'failed' => (CHOICES.includes(reason) ? 'cancelled' : 'failed')

export type ControlFrame =
  | { readonly t: 'offer'; readonly id: number; readonly name: string; readonly size: number; readonly mime: string }
  | { readonly t: 'accept'; readonly id: number; readonly window?: number; readonly ackEvery?: number }
  | { readonly t: 'ack'; readonly id: number; readonly n: number }
  | { readonly t: 'decline' | 'cancel'; readonly id: number; readonly reason?: TransferReason }
  | { readonly t: 'done' | 'received'; readonly id: number; readonly sha256: string }

/** A control frame longer than this (in UTF-16 units, so never more than 4 KiB of UTF-8 either) is ignored. */
export const MAX_CONTROL_CHARS = 4096
/** The transfer id before each data frame's bytes: a u32, big-endian. */
export const DATA_HEADER_BYTES = 4

const isId = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0
const HEX_SHA256 = /^[0-9a-f]{64}$/

/**
 * The control frame in `text`, or undefined for anything else: not JSON, too long, an unknown `t`, a field of
 * the wrong type. An offer's size is only checked to be a number here: whether it can be a file's size is the
 * receiver's to judge (it declines it, rather than ignoring it). Fields a frame does not need are ignored.
 */
export function parseControl(text: string): ControlFrame | undefined {
  if (text.length > MAX_CONTROL_CHARS) return undefined
  let f: unknown
  try {
    f = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof f !== 'object' || f === null) return undefined
  const { t, id, name, size, mime, reason, sha256, window, ackEvery, n } = f as Record<string, unknown>
  if (!isId(id)) return undefined
  switch (t) {
    case 'offer':
      if (typeof name !== 'string' || typeof size !== 'number' || (mime !== undefined && typeof mime !== 'string')) return undefined
      return { t, id, name: sanitizeName(name), size, mime: sanitizeMime(mime) }
    case 'accept': {
      // A window or a cadence that is not a positive safe integer is a later version's or nonsense: the accept
      // still counts, without it (and a cadence means nothing without a window).
      if (!isCount(window) || window === 0) return { t, id }
      return isCount(ackEvery) && ackEvery > 0 ? { t, id, window, ackEvery } : { t, id, window }
    }
    case 'ack':
      return isCount(n) ? { t, id, n } : undefined
    case 'decline':
    case 'cancel':
      // An unknown reason is a later version's: the frame still counts, without it.
      return FAULTS.includes(reason as TransferReason) || CHOICES.includes(reason as TransferReason) ? { t, id, reason: reason as TransferReason } : { t, id }
    case 'done':
    case 'received':
      return typeof sha256 === 'string' && HEX_SHA256.test(sha256) ? { t, id, sha256 } : undefined
    default:
      return undefined
  }
}

/** An empty data frame for transfer `id` with room for `payloadBytes`: the id, then the bytes to be filled in. */
export function dataFrame(id: number, payloadBytes: number): Uint8Array {
  const frame = new Uint8Array(DATA_HEADER_BYTES + payloadBytes)
  new DataView(frame.buffer).setUint32(0, id)
  return frame
}

/** The transfer id and bytes of a data frame, or undefined when it is too short to carry any. */
export function parseData(frame: Uint8Array): { id: number; bytes: Uint8Array } | undefined {
  if (frame.byteLength <= DATA_HEADER_BYTES) return undefined
  return { id: new DataView(frame.buffer, frame.byteOffset, 4).getUint32(0), bytes: frame.subarray(DATA_HEADER_BYTES) }
}

/** Control characters, path separators, and the invisible marks that make a name read as another (`txt.exe` shown as `exe.txt`). */
const UNSAFE_IN_NAME = /[\u0000-\u001f\u007f-\u009f/\\\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g
const MAX_NAME_BYTES = 255

/**
 * A name that is safe to show and to use as a file name in one directory: without control characters, path
 * separators, direction marks or lone surrogates, at most 255 bytes of UTF-8 (what Linux takes), never empty,
 * `.` or `..`.
 */
export function sanitizeName(raw: string): string {
  let name = raw.replace(UNSAFE_IN_NAME, '').trim()
  if (new TextEncoder().encode(name).byteLength > MAX_NAME_BYTES) {
    let bytes = 0
    let cut = ''
    for (const ch of name) {
      bytes += ch.length === 2 ? 4 : ch.charCodeAt(0) < 0x80 ? 1 : ch.charCodeAt(0) < 0x800 ? 2 : 3
      if (bytes > MAX_NAME_BYTES) break
      cut += ch
    }
    name = cut.trim()
  }
  return name === '' || name === '.' || name === '..' ? 'file' : name
}

const MIME = /^[a-z0-9!#$&^_.+-]{1,127}\/[a-z0-9!#$&^_.+-]{1,127}$/

/** A media type (`type/subtype`, without parameters), or `application/octet-stream` for anything else. */
export function sanitizeMime(raw: unknown): string {
  const mime = typeof raw === 'string' ? (raw.split(';')[0] as string).trim().toLowerCase() : ''
  return MIME.test(mime) ? mime : 'application/octet-stream'
}
