import * as v from 'valibot'
import { badInput, isErrorCode, type ErrorCode } from '../../core/errors.js'
import { FLAVOURS } from '../../core/flavours.js'
import { parseJsonText, parseTypeName, serializeTable } from '../../core/schema.js'
import type { TableRef } from '../../storage/table-store.js'
import { reconcileBody, reconcileRequest, SYNC_VERSION, tableRequest, type SyncReply, type SyncRequest } from '../messages.js'
import type { ReceivedReply } from './link.js'

/**
 * The sync protocol on a message channel (a WebRTC data channel, anything that carries whole text messages in
 * order): each message is one JSON frame (docs/protocol.md §14). Both ends ask and answer on the same channel;
 * a request carries an id its reply repeats. Requests are `q` frames, replies `r` frames, so the ids of the
 * two directions never meet.
 *
 *   {"v":1,"hello":{"name":"…"}}
 *   {"v":1,"id":7,"q":"push","flavour":"ttl","type":"chat","entries":{…}}
 *   {"v":1,"id":8,"q":"reconcile","body":{…the body of /malla/v1/reconcile…}}
 *   {"v":1,"id":7,"r":"corrections","entries":{…}}
 *   {"v":1,"id":8,"r":"differing","answer":{…}}     {"v":1,"id":9,"r":"entries","entries":{…},"more":true}
 *   {"v":1,"id":7,"r":"error","code":"FORBIDDEN","message":"…"}
 *   {"v":1,"route":{"id":"…","from":"…","to":"…","hops":2,"body":…}}   a message on its way to a peer
 *   {"v":1,"route":{"id":"…","from":"…","to":"…","hops":0,"sig":{"t":"offer",…}}}  the overlay's own (directed offers)
 *   {"v":1,"route":{"id":"…","from":"…","to":"…","hops":0,"ack":"<id>"}}  its acknowledgement, on the way back
 *
 * Fields a frame does not need are ignored, so a later version can add some.
 */

/** Request ids: positive integers a 32-bit counter can hold, so any implementation can keep them. */
export const MAX_FRAME_ID = 2 ** 31 - 1

export type ChannelFrame =
  | { readonly kind: 'hello'; readonly name: string | undefined }
  | { readonly kind: 'request'; readonly id: number; readonly request: SyncRequest }
  /** A request this side cannot read: answered with an error, the channel goes on. */
  | { readonly kind: 'bad-request'; readonly id: number; readonly code: ErrorCode; readonly message: string }
  /** A reply: its body is read once the request it answers is known (its table tells how to validate it). */
  | { readonly kind: 'reply'; readonly id: number; readonly body: Record<string, unknown> }
  /** A message routed across the overlay (overlay/message-router.ts); not part of the sync. */
  | { readonly kind: 'route'; readonly route: RouteFrame }

/** Hops a routed message may take at most; a frame that says more is not a frame. */
export const MAX_ROUTE_HOPS = 16
/** Characters of JSON a routed message's body may have. */
export const MAX_ROUTE_BODY_CHARS = 64 * 1024

const RouteId = v.pipe(v.string(), v.regex(/^[A-Za-z0-9._!-]{1,80}$/))
/** A peer a routed message names (`from`, `to`). */
export const ROUTE_PEER_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
const Route = v.object({
  id: RouteId,
  from: v.pipe(v.string(), v.regex(ROUTE_PEER_PATTERN)),
  to: v.pipe(v.string(), v.regex(ROUTE_PEER_PATTERN)),
  hops: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(MAX_ROUTE_HOPS)),
  body: v.optional(v.unknown()),
  /** The overlay's own messages (a directed offer, its answer), told apart from an app's `body`. */
  sig: v.optional(v.looseObject({ t: v.pipe(v.string(), v.maxLength(16)) })),
  ack: v.optional(RouteId),
})
export type RouteFrame = v.InferOutput<typeof Route>

const Envelope = v.looseObject({
  v: v.literal(SYNC_VERSION),
  id: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_FRAME_ID))),
  q: v.optional(v.string()),
  r: v.optional(v.string()),
  hello: v.optional(v.looseObject({ name: v.optional(v.pipe(v.string(), v.maxLength(256))) })),
  route: v.optional(v.unknown()),
})

const TableFrame = v.looseObject({ flavour: v.picklist(['ttl', 'multiwriter']), type: v.unknown(), entries: v.unknown() })

/**
 * Reads one frame. Throws BAD_INPUT for text that is not a frame at all (not JSON, no version this side
 * speaks, no id on a request or reply): a far end that sends that is broken, and the channel is closed.
 */
export function parseFrame(text: string): ChannelFrame {
  const envelope = v.safeParse(Envelope, parseJsonText(text, 'frame'))
  if (!envelope.success) throw badInput(`not a sync frame: ${v.summarize(envelope.issues).replace(/\n/g, '; ')}`)
  const { id, q, r, hello, route } = envelope.output
  if (hello !== undefined) return { kind: 'hello', name: hello.name }
  if (route !== undefined) {
    const parsed = v.safeParse(Route, route)
    if (!parsed.success) throw badInput(`not a routed message: ${v.summarize(parsed.issues).replace(/\n/g, '; ')}`)
    if ((parsed.output.body !== undefined || parsed.output.sig !== undefined) && text.length > MAX_ROUTE_BODY_CHARS + 512) throw badInput(`a routed message over ${MAX_ROUTE_BODY_CHARS} characters`)
    return { kind: 'route', route: parsed.output }
  }
  if (id === undefined) throw badInput('a sync frame without an id')
  if (r !== undefined) return { kind: 'reply', id, body: envelope.output }
  if (q === undefined) throw badInput('a sync frame that is neither a request nor a reply')
  try {
    return { kind: 'request', id, request: readRequest(q, envelope.output) }
  } catch (e) {
    const code = (e as { code?: unknown }).code
    return { kind: 'bad-request', id, code: isErrorCode(code) ? code : 'BAD_INPUT', message: (e as Error).message }
  }
}

function readRequest(q: string, frame: Record<string, unknown>): SyncRequest {
  if (q === 'reconcile') return reconcileRequest(frame.body)
  if (q !== 'push' && q !== 'table') throw badInput(`unknown request ${JSON.stringify(q.slice(0, 40))}`)
  const parsed = v.safeParse(TableFrame, frame)
  if (!parsed.success) throw badInput(`bad ${q} request: ${v.summarize(parsed.issues).replace(/\n/g, '; ')}`)
  const ref: TableRef = { flavour: parsed.output.flavour, type: parseTypeName(parsed.output.type) }
  return tableRequest(q, ref, parsed.output.entries, `${q} entries`)
}

/** A request as its frame; entries are written as the table text they already are. */
export function requestFrame(id: number, request: SyncRequest): string {
  const head = `{"v":${SYNC_VERSION},"id":${id},"q":`
  if (request.t === 'summary' || request.t === 'exchange') return `${head}"reconcile","body":${reconcileBody(request)}}`
  return `${head}"${request.t}","flavour":"${request.ref.flavour}","type":${JSON.stringify(request.ref.type)},"entries":${serializeTable(request.entries)}}`
}

export function replyFrame(id: number, reply: SyncReply): string {
  const head = `{"v":${SYNC_VERSION},"id":${id},"r":"${reply.t}"`
  switch (reply.t) {
    case 'table':
    case 'corrections':
      return `${head},"entries":${reply.entries}}`
    case 'differing':
      return `${head},"answer":${JSON.stringify(reply.answer)}}`
    case 'entries':
      return `${head},"entries":${reply.entries}${reply.more ? ',"more":true' : ''}}`
  }
}

export function errorFrame(id: number, code: ErrorCode, message: string): string {
  return JSON.stringify({ v: SYNC_VERSION, id, r: 'error', code, message: message.slice(0, 500) })
}

export function helloFrame(name: string | undefined): string {
  return JSON.stringify({ v: SYNC_VERSION, hello: name === undefined ? {} : { name } })
}

/** The far end's refusal, as a reply frame says it. */
export interface RefusedReply {
  readonly code: ErrorCode
  readonly message: string
}

/**
 * A reply's body, validated against the request it answers (its table's flavour, the reply kinds that request
 * may get). Throws BAD_INPUT when it is not a fitting reply; returns the refusal when it is an error frame.
 */
export function readReply(body: Record<string, unknown>, request: SyncRequest): ReceivedReply | RefusedReply {
  const r = body.r
  if (r === 'error') {
    const code = isErrorCode(body.code) ? body.code : 'PEER'
    return { code, message: typeof body.message === 'string' ? body.message.slice(0, 500) : 'no reason given' }
  }
  const expected = { table: 'table', push: 'corrections', summary: 'differing', exchange: 'entries' }[request.t]
  if (r !== expected) throw badInput(`a ${String(r).slice(0, 40)} reply to a ${request.t} request`)
  const what = `${String(r)} reply`
  const parse = FLAVOURS[request.ref.flavour].parse
  switch (r) {
    case 'table':
    case 'corrections':
      return { t: r, entries: parse(body.entries, what) }
    case 'differing':
      return { t: 'differing', answer: body.answer }
    default:
      return { t: 'entries', entries: parse(body.entries, what), more: body.more === true }
  }
}

export function routeFrame(route: RouteFrame): string {
  return JSON.stringify({ v: SYNC_VERSION, route })
}
