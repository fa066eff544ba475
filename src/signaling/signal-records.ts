import * as v from 'valibot'
import { badInput } from '../core/errors.js'
import type { Json, TypeName } from '../core/types.js'
import { roomOwnType } from '../overlay/room-tables.js'
import { type CompactSession, expandSession, type SessionFacts } from './sdp-codec.js'

/**
 * A room's two signaling tables, as shared-state types of that room (`room-<room>-_offers`, `-_answers`:
 * LibreMesh-valid names, so plain Lua routers carry them too):
 * - offers, key `<peer>.<n>`: an open offer, or the mark that it was taken (`taken`: the answerer that won
 *   it), which tells every other answerer to move on;
 * - answers, key `<offer key>><answerer>`: an answer to one offer. Several answerers never write the same
 *   key, so no answer overwrites another before the offerer has seen it.
 * One pair per room, so that joining a room reads that room's records only, however many other rooms a
 * router carries, and so that the room's connections can carry them too (the overlay syncs the room's types).
 * Whatever the key says (whose offer, which answerer) is not repeated in `data`: every byte of these
 * records crosses every link of the mesh. The entry's `author` must be the peer the key names.
 */
export interface SignalTypes {
  readonly offers: TypeName
  readonly answers: TypeName
}

export function signalTypes(room: string): SignalTypes {
  checkRoomName(room)
  return { offers: roomOwnType(room, '_offers'), answers: roomOwnType(room, '_answers') }
}

export const SIGNAL_VERSION = 1

/** Peer ids are random, short, and safe inside keys (`.` and `>` separate the parts of a key). */
export const PEER_ID_PATTERN = /^[a-z0-9]{8,32}$/
/** `k` and 25 base32 characters (125 bits): an id bound to a key (§18.2). No random id malla makes (16 characters) has this shape. */
const KEY_BOUND_ID = /^k[a-z2-7]{25}$/

/** Whether `peer` is an id bound to a key: every record naming it must be signed by that key. */
export const isKeyBound = (peer: string): boolean => KEY_BOUND_ID.test(peer)
const ROOM_PATTERN = /^[\w.:@+-]{1,64}$/

export interface OfferRecord {
  readonly kind: 'offer'
  readonly room: string
  readonly peer: string
  /** The router the offerer reaches the mesh through (its `author` name), when it knows it. */
  readonly router?: string
  readonly session: SessionFacts
  readonly expiresAt: number
  /** The fingerprint of the OpenPGP key that signed the record (§18.2); absent when nobody did. */
  readonly signer?: string
}

export interface TakenRecord {
  readonly kind: 'taken'
  readonly peer: string
  /** The answerer whose answer the offerer applied. */
  readonly by: string
  readonly expiresAt: number
  readonly signer?: string
}

export interface AnswerRecord {
  readonly kind: 'answer'
  /** The answerer. */
  readonly peer: string
  /** The offerer, and the key of its offer. */
  readonly to: string
  readonly offer: string
  readonly session: SessionFacts
  readonly expiresAt: number
  readonly signer?: string
}

const Time = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2 ** 53 - 1))
const PeerId = v.pipe(v.string(), v.regex(PEER_ID_PATTERN))
const Room = v.pipe(v.string(), v.regex(ROOM_PATTERN))
const RouterName = v.pipe(v.string(), v.maxLength(64))

const OfferData = v.object({ v: v.literal(SIGNAL_VERSION), room: Room, r: v.optional(RouterName), s: v.unknown(), exp: Time })
const TakenData = v.object({ v: v.literal(SIGNAL_VERSION), taken: PeerId, exp: Time })
const AnswerData = v.object({ v: v.literal(SIGNAL_VERSION), s: v.unknown(), exp: Time })

export function isRoomName(room: string): boolean {
  return ROOM_PATTERN.test(room)
}

/** Throws BAD_INPUT unless `room` is a room name. */
export function checkRoomName(room: string): void {
  if (!isRoomName(room)) throw badInput(`bad room name ${JSON.stringify(room)}: 1-64 characters of letters, digits and _.:@+-`)
}

export function offerKey(peer: string, n: number): string {
  return `${peer}.${n}`
}

export function answerKey(offer: string, answerer: string): string {
  return `${offer}>${answerer}`
}

/** The wire form of an offer (what goes in `data`): the room, the router, the compact session, the expiry. */
export function offerData(o: { readonly room: string; readonly router?: string | undefined; readonly session: CompactSession; readonly expiresAt: number }): Json {
  return { v: SIGNAL_VERSION, room: o.room, ...(o.router ? { r: o.router } : {}), s: o.session as Json, exp: o.expiresAt }
}

export function takenData(t: { readonly by: string; readonly expiresAt: number }): Json {
  return { v: SIGNAL_VERSION, taken: t.by, exp: t.expiresAt }
}

export function answerData(a: { readonly session: CompactSession; readonly expiresAt: number }): Json {
  return { v: SIGNAL_VERSION, s: a.session as Json, exp: a.expiresAt }
}

/**
 * Reads one entry of a room's offers. Anybody can write to shared-state, so everything is checked, and the
 * session must expand. Throws BAD_INPUT; the caller counts and skips (and checks that the entry's author
 * is the `peer` returned).
 */
export function parseOfferEntry(key: string, data: unknown): OfferRecord | TakenRecord {
  const peer = offerOwner(key)
  if (data !== null && typeof data === 'object' && 'taken' in data) {
    const d = parse(TakenData, data, key)
    return { kind: 'taken', peer, by: d.taken, expiresAt: d.exp }
  }
  const d = parse(OfferData, data, key)
  return { kind: 'offer', room: d.room, peer, ...(d.r ? { router: d.r } : {}), session: expandSession(d.s), expiresAt: d.exp }
}

export function parseAnswerEntry(key: string, data: unknown): AnswerRecord {
  const split = key.lastIndexOf('>')
  const offer = key.slice(0, split)
  const peer = key.slice(split + 1)
  if (split < 0 || !PEER_ID_PATTERN.test(peer)) throw badInput(`answer key ${key} is not <offer key>><answerer>`)
  const to = offerOwner(offer)
  if (peer === to) throw badInput(`answer ${key} answers its own offer`)
  const d = parse(AnswerData, data, key)
  return { kind: 'answer', peer, to, offer, session: expandSession(d.s), expiresAt: d.exp }
}

/**
 * The peer a signaling key names, without checking the key's shape (the record's parse does that): an offer's
 * `<peer>.<n>`, an answer's `<offer key>><answerer>`.
 */
export function keyPeer(table: 'offers' | 'answers', key: string): string {
  return table === 'offers' ? key.slice(0, key.lastIndexOf('.')) : key.slice(key.lastIndexOf('>') + 1)
}

/** The peer an offer key (`<peer>.<n>`) belongs to. */
function offerOwner(key: string): string {
  const dot = key.lastIndexOf('.')
  const peer = key.slice(0, dot)
  if (dot < 0 || !PEER_ID_PATTERN.test(peer) || !/^\d{1,9}$/.test(key.slice(dot + 1))) throw badInput(`bad offer key ${key}: expected <peer>.<n>`)
  return peer
}

function parse<T extends v.GenericSchema>(schema: T, data: unknown, key: string): v.InferOutput<T> {
  const r = v.safeParse(schema, data)
  if (!r.success) throw badInput(`bad signaling record ${key}: ${r.issues[0]?.message ?? 'wrong shape'}`)
  return r.output
}
