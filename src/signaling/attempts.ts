import { MallaError } from '../core/errors.js'
import type { RtcPeer } from '../rtc/rtc-peer.js'
import type { SessionFacts } from './sdp-codec.js'

/**
 * A mesh's connection attempts, each from the RTCPeerConnection made for it to a link or its end, and the only
 * moves an attempt may make (docs/protocol.md §12.3):
 *
 *     offer:   gathering ──► published ──► taken ──► linked
 *     answer:  answering ──► linked
 *     direct:  dialing   ──► linked
 *
 * and any state before `linked` ──► ended (failed, lost, timed out, withdrawn, dropped). `linked` and `ended` are
 * final: the attempt leaves the book, and whatever still holds it (a callback of its RtcPeer that fires late)
 * finds it over. So every race of the mesh comes down to one question, asked here: is this attempt still in
 * the state I think? `Mesh` decides what to do (mesh-policy.ts); this module only keeps the states honest.
 */
export type AttemptKind = 'offer' | 'answer' | 'direct'
export type AttemptState = 'gathering' | 'published' | 'taken' | 'answering' | 'dialing' | 'linked' | 'ended'

/** Where each kind starts, and where each live state may go. */
const START: Readonly<Record<AttemptKind, AttemptState>> = { offer: 'gathering', answer: 'answering', direct: 'dialing' }
const MOVES: Readonly<Record<AttemptKind, Partial<Record<AttemptState, readonly AttemptState[]>>>> = {
  offer: { gathering: ['published', 'ended'], published: ['taken', 'ended'], taken: ['linked', 'ended'] },
  answer: { answering: ['linked', 'ended'] },
  direct: { dialing: ['linked', 'ended'] },
}

/** Whether an attempt of `kind` may go from `from` to `to`. */
export function mayMove(kind: AttemptKind, from: AttemptState, to: AttemptState): boolean {
  return MOVES[kind][from]?.includes(to) ?? false
}

interface Common {
  readonly rtc: RtcPeer
  /** When it was made, and when it entered its present state (the mesh's clock). */
  readonly startedAt: number
  readonly enteredAt: number
  readonly state: AttemptState
}

/** One of this peer's own offers (key: the offer's key in the offers table). */
export interface OfferAttempt extends Common {
  readonly kind: 'offer'
  readonly key: string
  /** Once gathered. */
  session?: SessionFacts
  expiresAt: number
  renewals: number
  /** Once taken: the answerer whose answer was applied (and the key that signed it), and how to tell the other answerers. */
  remote?: string
  signer?: string
  /** The DTLS certificate fingerprint the applied answer named (SHA-256, hex). */
  remoteFingerprint?: string
  markTaken?: () => void
}

/** This peer's answer to another's offer (key: the answer's key; `offer`: the offer's). */
export interface AnswerAttempt extends Common {
  readonly kind: 'answer'
  readonly key: string
  readonly offer: string
  readonly remote: string
  readonly router: string | undefined
  /** The fingerprint of the key that signed the offer, when one did. */
  readonly signer?: string | undefined
  /** The DTLS certificate fingerprint the offer named (SHA-256, hex). */
  readonly remoteFingerprint?: string
}

/** A directed connection (`Mesh.connectTo`, `acceptDirect`), whose offer and answer travel over the overlay. */
export interface DirectAttempt extends Common {
  readonly kind: 'direct'
  readonly key: string
  readonly remote: string
  /** Who made the offer: this peer (connectTo) or the remote (acceptDirect). */
  readonly offerer: string
}

export type Attempt = OfferAttempt | AnswerAttempt | DirectAttempt
type Fields<A extends Attempt> = Omit<A, 'kind' | 'state' | 'startedAt' | 'enteredAt'>

/** The live attempts of one mesh; an attempt that is linked or ended is no longer here. */
export class Attempts {
  private readonly live = new Set<Attempt>()

  constructor(private readonly now: () => number) {}

  get size(): number {
    return this.live.size
  }

  offer(fields: Fields<OfferAttempt>): OfferAttempt {
    return this.add({ ...fields, kind: 'offer' })
  }

  answer(fields: Fields<AnswerAttempt>): AnswerAttempt {
    return this.add({ ...fields, kind: 'answer' })
  }

  direct(fields: Fields<DirectAttempt>): DirectAttempt {
    return this.add({ ...fields, kind: 'direct' })
  }

  /** Whether `a` is still in the book and in one of `states` (all live states when none are given). */
  is(a: Attempt, ...states: AttemptState[]): boolean {
    return this.live.has(a) && (states.length === 0 || states.includes(a.state))
  }

  /**
   * Moves a live attempt on. Returns false when it has ended or linked meanwhile (a late callback: nothing to
   * do); a move the machine does not have is a programming error (INTERNAL).
   */
  move(a: Attempt, to: Exclude<AttemptState, 'gathering' | 'answering' | 'dialing'>): boolean {
    if (!this.live.has(a)) return false
    if (!mayMove(a.kind, a.state, to)) throw new MallaError('INTERNAL', `a ${a.kind} attempt cannot go from ${a.state} to ${to}`)
    const moved = a as { state: AttemptState; enteredAt: number }
    moved.state = to
    moved.enteredAt = this.now()
    if (to === 'linked' || to === 'ended') this.live.delete(a)
    return true
  }

  /** Ends a live attempt; false when it was over already, so whoever ends it first does the cleaning up. */
  end(a: Attempt): boolean {
    return this.move(a, 'ended')
  }

  /** Live attempts of one kind, in one of `states` (all when none are given), oldest first. */
  list<K extends AttemptKind>(kind: K, ...states: AttemptState[]): Array<Extract<Attempt, { kind: K }>> {
    const out: Array<Extract<Attempt, { kind: K }>> = []
    for (const a of this.live) if (a.kind === kind && (states.length === 0 || states.includes(a.state))) out.push(a as Extract<Attempt, { kind: K }>)
    return out
  }

  /** This peer's live offer of that key. */
  ownOffer(key: string): OfferAttempt | undefined {
    for (const a of this.live) if (a.kind === 'offer' && a.key === key) return a
    return undefined
  }

  /** Every live attempt, ended here: for closing the mesh. */
  endAll(): Attempt[] {
    const all = [...this.live]
    for (const a of all) this.end(a)
    return all
  }

  private add<A extends Attempt>(fields: Omit<A, 'state' | 'startedAt' | 'enteredAt'>): A {
    const at = this.now()
    const a = { ...fields, state: START[fields.kind], startedAt: at, enteredAt: at } as unknown as A
    this.live.add(a)
    return a
  }
}
