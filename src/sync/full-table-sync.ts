import { isMallaError, MallaError } from '../core/errors.js'
import { FLAVOURS } from '../core/flavours.js'
import type { Replica } from '../replica/replica.js'
import type { TableRef } from '../storage/table-store.js'
import { gunzip, gzip, isGzip } from '../transport/gzip.js'
import { decodeName } from './neighbour-name.js'
import { MALLA_HEADER, MALLA_NAME_HEADER, MALLA_SYNC_HEADER } from './links/http-wire.js'
import type { HttpPoster } from '../transport/http-poster.js'

/**
 * LibreMesh's sync, as a client: POST the whole local table to a neighbour's endpoint, merge the
 * whole table it answers. One round trip leaves both sides with the same table.
 */

export interface ExchangeOptions {
  readonly poster: HttpPoster
  /** Per request, connect to last byte; LibreMesh's uclient-fetch uses 3 s. */
  readonly timeoutMs?: number
  /** Largest reply accepted, after decompression. */
  readonly maxReplyBytes?: number
}

export const DEFAULT_TIMEOUT_MS = 3000

export const DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024

/** What the neighbour answered: a table to merge, or nothing usable (a LibreMesh router's empty 200, say). */
interface ReplyFacts {
  readonly bytesSent: number
  readonly bytesReceived: number
  /** The neighbour answered with malla's capability header. */
  readonly malla: boolean
  /** Its name, when it said (MALLA_NAME_HEADER). */
  readonly name?: string
}

export type ExchangeReply =
  | ({ readonly kind: 'table'; readonly value: unknown } & ReplyFacts)
  | ({ readonly kind: 'empty'; readonly reason: string } & ReplyFacts)

export interface ExchangeRequest {
  /** Ask a malla neighbour for only its corrections to the entries sent (see MALLA_SYNC_HEADER). */
  readonly push?: boolean
  /** This node's name, for a malla receiver (MALLA_NAME_HEADER): it then knows which neighbour a change came from. */
  readonly from?: string
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * One POST of a table's text. `?gzip` in the URL compresses both bodies, as LibreMesh's CGI expects.
 * Real routers report errors as an empty 200, and may answer anything on failure: an empty or non-JSON
 * answer is "no data", never an empty table. HTTP error statuses (malla daemons use them) throw PEER.
 */
export async function exchangeTable(url: string, text: string, options: ExchangeOptions, request: ExchangeRequest = {}): Promise<ExchangeReply> {
  const maxReplyBytes = options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES
  // LibreMesh's CGI compresses when the query string contains "gzip" anywhere.
  const compressed = (url.split('#')[0]?.split('?')[1] ?? '').includes('gzip')
  const plain = encoder.encode(text)
  const body = compressed ? await gzip(plain) : plain
  const reply = await options.poster.post({
    url,
    body,
    headers: {
      'content-type': 'application/json',
      ...(request.push ? { [MALLA_SYNC_HEADER]: 'push' } : {}),
      ...(request.from ? { [MALLA_NAME_HEADER]: encodeURIComponent(request.from) } : {}),
    },
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxReplyBytes,
  })
  const name = decodeName(reply.headers.get(MALLA_NAME_HEADER))
  const sizes = { bytesSent: body.byteLength, bytesReceived: reply.body.byteLength, malla: reply.headers.get(MALLA_HEADER) !== undefined, ...(name ? { name } : {}) }
  if (reply.status < 200 || reply.status > 299) {
    const detail = decoder.decode(reply.body.subarray(0, 300)).trim()
    throw new MallaError('PEER', `POST ${url} answered HTTP ${reply.status}${detail ? `: ${detail}` : ''}`)
  }
  let bytes = reply.body
  if (isGzip(bytes)) {
    try {
      bytes = await gunzip(bytes, maxReplyBytes)
    } catch (e) {
      return { kind: 'empty', reason: `undecodable gzip answer: ${(e as Error).message}`, ...sizes }
    }
  }
  const answer = decoder.decode(bytes).trim()
  if (answer === '') return { kind: 'empty', reason: 'empty answer (a LibreMesh router reports errors this way)', ...sizes }
  try {
    return { kind: 'table', value: JSON.parse(answer), ...sizes }
  } catch {
    return { kind: 'empty', reason: `answer is not JSON: ${JSON.stringify(answer.slice(0, 80))}`, ...sizes }
  }
}

export interface SyncOutcome {
  readonly url: string
  /** Keys that changed substantially here by merging the answer. */
  readonly keys: readonly string[]
  /** Why nothing was merged, when nothing was. */
  readonly skipped?: string
  readonly bytesSent: number
  readonly bytesReceived: number
  /** The neighbour speaks malla (it answered with the capability header). */
  readonly malla: boolean
  /** The neighbour's name, when it said. */
  readonly name?: string
}

/** The outcome of an exchange that failed outright (no answer, timeout, HTTP error). */
export function failedOutcome(url: string, error: unknown): SyncOutcome {
  return { url, keys: [], skipped: error instanceof Error ? error.message : String(error), bytesSent: 0, bytesReceived: 0, malla: false }
}

/** Syncs one table with one neighbour endpoint URL and merges what it answers into the replica. */
export async function syncTable(replica: Replica, ref: TableRef, url: string, options: ExchangeOptions): Promise<SyncOutcome> {
  const local = await replica.read(ref)
  const reply = await exchangeTable(url, local.text, options)
  return mergeReply(replica, ref, url, reply)
}

async function mergeReply(replica: Replica, ref: TableRef, url: string, reply: ExchangeReply): Promise<SyncOutcome> {
  const sizes = { bytesSent: reply.bytesSent, bytesReceived: reply.bytesReceived, malla: reply.malla, ...(reply.name ? { name: reply.name } : {}) }
  if (reply.kind === 'empty') return { url, keys: [], skipped: reply.reason, ...sizes }
  try {
    const what = `answer from ${url}`
    const table = FLAVOURS[ref.flavour].parse(reply.value, what)
    if (table.size === 0) return { url, keys: [], ...sizes }
    return { url, keys: (await replica.mergeInto(ref, table)).changed, ...sizes }
  } catch (e) {
    if (isMallaError(e, 'BAD_INPUT')) return { url, keys: [], skipped: e.message, ...sizes }
    throw e
  }
}
