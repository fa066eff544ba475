import * as v from 'valibot'
import { badInput } from '../core/errors.js'
import type { Json, TypeName } from '../core/types.js'
import { type CompactSession, expandSession, type SessionFacts } from './sdp-codec.js'

/**
 * The signaling tables, as shared-state types (LibreMesh-valid names, so plain Lua routers carry them too):
 * - `malla-offers`, key `<peer>.<n>`: an open offer, or the mark that it was taken (`taken`: the answerer
 *   that won it), which tells every other answerer to move on;
 * - `malla-answers`, key `<offer key>><answerer>`: an answer to one offer. Several answerers never write
 *   the same key, so no answer overwrites another before the offerer has seen it.
 * Every record names its room, so one pair of tables serves every app on the mesh.
 */
export const OFFERS_TYPE = 'malla-offers' as TypeName
export const ANSWERS_TYPE = 'malla-answers' as TypeName
export const SIGNAL_VERSION = 1

/** Peer ids are random, short, and safe inside keys (`.` and `>` separate the parts of a key). */
export const PEER_ID_PATTERN = /^[a-z0-9]{8,32}$/
const ROOM_PATTERN = /^[\w.:@+-]{1,64}$/

export interface OfferRecord {
  readonly kind: 'offer'
  readonly room: string
  readonly peer: string
  /** The router the offerer reaches the mesh through (its `author` name), when it knows it. */
  readonly router?: string
  readonly session: SessionFacts
  readonly createdAt: number
  readonly expiresAt: number
}

export interface TakenRecord {
  readonly kind: 'taken'
  readonly room: string
  readonly peer: string
  /** The answerer whose answer the offerer applied. */
  readonly by: string
  readonly createdAt: number
  readonly expiresAt: number
}

export interface AnswerRecord {
  readonly kind: 'answer'
  readonly room: string
  readonly peer: string
  /** The offerer, and the key of its offer. */
  readonly to: string
  readonly offer: string
  readonly router?: string
  readonly session: SessionFacts
  readonly createdAt: number
  readonly expiresAt: number
}

const Time = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2 ** 53 - 1))
const PeerId = v.pipe(v.string(), v.regex(PEER_ID_PATTERN))
const Room = v.pipe(v.string(), v.regex(ROOM_PATTERN))
const RouterName = v.pipe(v.string(), v.maxLength(64))

const OfferData = v.object({ v: v.literal(SIGNAL_VERSION), room: Room, peer: PeerId, r: v.optional(RouterName), s: v.unknown(), t: Time, exp: Time })
const TakenData = v.object({ v: v.literal(SIGNAL_VERSION), room: Room, peer: PeerId, taken: PeerId, t: Time, exp: Time })
const AnswerData = v.object({
  v: v.literal(SIGNAL_VERSION),
  room: Room,
  peer: PeerId,
  to: PeerId,
  offer: v.pipe(v.string(), v.maxLength(80)),
  r: v.optional(RouterName),
  s: v.unknown(),
  t: Time,
  exp: Time,
})

export function isRoomName(room: string): boolean {
  return ROOM_PATTERN.test(room)
}

export function offerKey(peer: string, n: number): string {
  return `${peer}.${n}`
}

export function answerKey(offer: string, answerer: string): string {
  return `${offer}>${answerer}`
}

/** The wire form of an offer (what goes in `data`): short field names, the compact session. */
export function offerData(o: Omit<OfferRecord, 'kind' | 'session'> & { readonly session: CompactSession }): Json {
  return { v: SIGNAL_VERSION, room: o.room, peer: o.peer, ...(o.router ? { r: o.router } : {}), s: o.session as Json, t: o.createdAt, exp: o.expiresAt }
}

export function takenData(t: Omit<TakenRecord, 'kind'>): Json {
  return { v: SIGNAL_VERSION, room: t.room, peer: t.peer, taken: t.by, t: t.createdAt, exp: t.expiresAt }
}

export function answerData(a: Omit<AnswerRecord, 'kind' | 'session'> & { readonly session: CompactSession }): Json {
  return {
    v: SIGNAL_VERSION,
    room: a.room,
    peer: a.peer,
    to: a.to,
    offer: a.offer,
    ...(a.router ? { r: a.router } : {}),
    s: a.session as Json,
    t: a.createdAt,
    exp: a.expiresAt,
  }
}

/**
 * Reads one entry of `malla-offers`. Anybody can write to shared-state, so everything is checked: the key
 * must name the peer the data names (nobody publishes offers in another peer's name by accident), and the
 * session must expand. Throws BAD_INPUT; the caller counts and skips.
 */
export function parseOfferEntry(key: string, data: unknown): OfferRecord | TakenRecord {
  if (data !== null && typeof data === 'object' && 'taken' in data) {
    const d = parse(TakenData, data, key)
    checkKeyOwner(key, d.peer)
    return { kind: 'taken', room: d.room, peer: d.peer, by: d.taken, createdAt: d.t, expiresAt: d.exp }
  }
  const d = parse(OfferData, data, key)
  checkKeyOwner(key, d.peer)
  return { kind: 'offer', room: d.room, peer: d.peer, ...(d.r ? { router: d.r } : {}), session: expandSession(d.s), createdAt: d.t, expiresAt: d.exp }
}

export function parseAnswerEntry(key: string, data: unknown): AnswerRecord {
  const d = parse(AnswerData, data, key)
  if (key !== answerKey(d.offer, d.peer)) throw badInput(`answer key ${key} does not match its offer and answerer`)
  checkKeyOwner(d.offer, d.to)
  if (d.peer === d.to) throw badInput(`answer ${key} answers its own offer`)
  return {
    kind: 'answer',
    room: d.room,
    peer: d.peer,
    to: d.to,
    offer: d.offer,
    ...(d.r ? { router: d.r } : {}),
    session: expandSession(d.s),
    createdAt: d.t,
    expiresAt: d.exp,
  }
}

function checkKeyOwner(key: string, peer: string): void {
  const dot = key.lastIndexOf('.')
  if (dot < 0 || key.slice(0, dot) !== peer || !/^\d{1,9}$/.test(key.slice(dot + 1))) throw badInput(`offer key ${key} does not belong to peer ${peer}`)
}

function parse<T extends v.GenericSchema>(schema: T, data: unknown, key: string): v.InferOutput<T> {
  const r = v.safeParse(schema, data)
  if (!r.success) throw badInput(`bad signaling record ${key}: ${r.issues[0]?.message ?? 'wrong shape'}`)
  return r.output
}
