import type { AnswerRecord, OfferRecord } from './signal-records.js'
import type { TablesView } from './signal-tables.js'

/**
 * The mesh's decisions as pure functions (docs/protocol.md §12.3): which offers to answer, which answer to take,
 * who keeps what in glare, how many offers to keep, when an answer is over. `Mesh` acts on them; each rule is
 * unit-tested here on its own, apart from the RTC and the tables.
 */

/** The distance of a router whose hop count is not known: after every known one (a number: it is subtracted). */
export const UNKNOWN_HOPS = 1_000_000

export interface AnswerChoice {
  readonly self: string
  readonly now: number
  /** How many attempts this peer may still start (below its target, and within its RTCPeerConnection bound). */
  readonly room: number
  /** Offers this peer answered before and that failed. */
  readonly failed: ReadonlySet<string>
  /** Whether this peer is connected to `peer` already, or has an attempt with it under way. */
  readonly busyWith: (peer: string) => boolean
  /** Hops from this peer's router to `router` (0 for its own), UNKNOWN_HOPS when unknown. */
  readonly hops: (router: string | undefined) => number
  /** Peers known to have left without withdrawing their offers (a closed tab): their offers are not answered. */
  readonly gone?: (peer: string) => boolean
  /**
   * Keys (fingerprints) whose offers failed here lately: none of their offers is answered, whatever session id
   * they come under (a key may make as many as it likes), until this says otherwise.
   */
  readonly failedSigner?: (fingerprint: string) => boolean
  /** Whether this peer has an answer under way to an offer signed by that key (under whatever session id). */
  readonly answeringSigner?: (fingerprint: string) => boolean
}

/**
 * The offers to answer now, best first (§12.3 point 2): open offers of others, not expired, not failed before,
 * not already answered by someone else, from peers this one is not connected or connecting to and not known
 * to have left, nor signed by a key whose offers failed lately; behind the same router first, then the fewest
 * hops, then an order of this peer's own; at most one per remote peer, or per key for signed offers.
 */
export function offersToAnswer(view: TablesView, c: AnswerChoice): Array<{ readonly key: string; readonly record: OfferRecord }> {
  if (c.room <= 0) return []
  // An offer someone else has answered is probably gone already, and answering it too is worse than wasted:
  // both answerers run ICE with the offerer's one agent (they share its credentials), and the loser's checks and
  // DTLS hello can break the winner's handshake. Among the others each peer takes its own order (a hash of its
  // id and the key), not "the newest" that every answerer would pick at once.
  const answered = new Set(view.answers.filter((a) => a.record.peer !== c.self && a.record.expiresAt > c.now).map((a) => a.record.offer))
  const candidates = view.offers
    .flatMap((o) => (o.record !== 'withdrawn' && o.record.kind === 'offer' ? [{ key: o.key, record: o.record, spread: spread(c.self, o.key) }] : []))
    .filter(({ key, record }) => record.peer !== c.self && record.expiresAt > c.now && !c.failed.has(key) && !answered.has(key) && !c.busyWith(record.peer) && !c.gone?.(record.peer) && !(record.signer !== undefined && (c.failedSigner?.(record.signer) || c.answeringSigner?.(record.signer))))
    .sort((x, y) => c.hops(x.record.router) - c.hops(y.record.router) || x.spread - y.spread)
  const chosen: Array<{ key: string; record: OfferRecord }> = []
  // One attempt per author at a time: a peer, or a key, whatever session ids it signs under (a key's decoys can
  // then cost an answerer one connect timeout at a time, not one per decoy).
  const authors = new Set<string>()
  for (const { key, record } of candidates) {
    if (chosen.length >= c.room) break
    const author = record.signer ?? record.peer
    if (authors.has(author)) continue
    authors.add(author)
    chosen.push({ key, record })
  }
  return chosen
}

/** Of the answers to one open offer of ours that may be taken, the one to apply: the lowest answerer id. */
export function pickAnswer(answers: readonly AnswerRecord[]): AnswerRecord | undefined {
  let best: AnswerRecord | undefined
  for (const a of answers) if (best === undefined || a.peer < best.peer) best = a
  return best
}

/**
 * Glare (§12.3 point 5): this peer has an answer out to an offer of `remote`, and `remote` answered one of ours.
 * Both sides keep the attempt on the offer of the lower id: the lower id drops its own answer and takes the
 * other's ('take-theirs'); the higher keeps its answer and ignores the other's ('keep-mine').
 */
export function glare(self: string, remote: string): 'take-theirs' | 'keep-mine' {
  return self < remote ? 'take-theirs' : 'keep-mine'
}

/** Of two or more connections to one peer, the one both ends keep: the lower (offerer id, offer key). */
export function keptConnection<T extends { readonly offerer: string; readonly offer: string }>(list: readonly T[]): { readonly keep: T; readonly drop: readonly T[] } {
  const sorted = [...list].sort((x, y) => (x.offerer !== y.offerer ? (x.offerer < y.offerer ? -1 : 1) : x.offer < y.offer ? -1 : x.offer > y.offer ? 1 : 0))
  return { keep: sorted[0] as T, drop: sorted.slice(1) }
}

/**
 * How many offers to keep published (§12.3 point 1): `pool` below `target` connections, one from `target` to
 * `max` (enough for a newcomer to find this peer), none at `max`.
 */
export function offersWanted(connections: number, s: { readonly target: number; readonly max: number; readonly pool: number }): number {
  if (connections >= s.max) return 0
  return connections >= s.target ? Math.min(1, s.pool) : s.pool
}

/**
 * Whether an answer of ours is over, and why (§12.3 points 4 and 6): 'lost' when its offer is gone, withdrawn, or
 * taken by another answerer; 'timeout' when it has waited past the connect timeout, or its offer expired.
 */
export function answerOver(
  offer: TablesView['offers'][number]['record'] | undefined,
  a: { readonly self: string; readonly startedAt: number; readonly now: number; readonly connectTimeoutMs: number },
): 'lost' | 'timeout' | undefined {
  if (offer === undefined || offer === 'withdrawn' || (offer.kind === 'taken' && offer.by !== a.self)) return 'lost'
  if (a.now - a.startedAt > a.connectTimeoutMs || (offer.kind === 'offer' && offer.expiresAt <= a.now)) return 'timeout'
  return undefined
}

/**
 * How long a taken offer may take to open before the offerer gives up on it (§12.3 point 6). Much shorter than
 * the connect timeout while attempts open: on a mesh a channel opens within a second, and what keeps one from
 * opening (an answerer that lost the race but reached the offer's ICE agent first) does not go away by waiting.
 * But each failure in a row doubles it, up to the connect timeout: on a starved CPU a handshake takes longer
 * than OPEN_DEADLINE_MS, and giving up on every one only starts another that starves too (measured: 40 werift
 * peers on 2 cores, 34 of them still alone after 180 s, 387 taken offers given up while connecting).
 */
export function openDeadline(failuresInRow: number, connectTimeoutMs: number): number {
  return Math.min(connectTimeoutMs, OPEN_DEADLINE_MS * 2 ** Math.min(failuresInRow, 8))
}

export const OPEN_DEADLINE_MS = 3000

/**
 * How many attempts a peer runs at once (answers in flight, offers published or being answered): as many as its
 * rules ask while attempts open, one while they fail in a row (§12.3 point 6), until one opens. Each handshake
 * a starved peer starts slows the ones it has.
 */
export function attemptsAtOnce(failuresInRow: number, wanted: number): number {
  return failuresInRow > 0 ? Math.min(1, wanted) : wanted
}

/** FNV-1a of `peer/key`: an order of each peer's own over the same offers. */
export function spread(peer: string, key: string): number {
  let h = 0x811c9dc5
  for (const ch of `${peer}/${key}`) {
    h ^= ch.charCodeAt(0)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}
