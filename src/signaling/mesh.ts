import { createNanoEvents, type Unsubscribe } from 'nanoevents'
import { MallaError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import type { Json } from '../core/types.js'
import { silentLogger } from '../core/log.js'
import type { Replica } from '../replica/replica.js'
import { FramedChannel, type MessageKind, type MessageValue, type Progress } from '../rtc/framed-channel.js'
import type { RtcChannel, RtcCloseReason, RtcFactory, RtcOptions, RtcPeer } from '../rtc/rtc-peer.js'
import { compactSession, expandSession, sessionFacts, toSdp, withoutShadowedNames, type CompactSession } from './sdp-codec.js'
import {
  answerData,
  answerKey,
  type AnswerRecord,
  checkRoomName,
  offerData,
  offerKey,
  type OfferRecord,
  PEER_ID_PATTERN,
  takenData,
} from './signal-records.js'
import { SHORT_SIGNAL_TTL, SignalTables, type SignalIdentity, type TablesView } from './signal-tables.js'
import { answerOver, attemptsAtOnce, glare, keptConnection, offersToAnswer, offersWanted, openDeadline, pickAnswer, UNKNOWN_HOPS } from './mesh-policy.js'
import { type AnswerAttempt, type Attempt, Attempts, type DirectAttempt, type OfferAttempt } from './attempts.js'

export interface MeshOptions {
  /** Peers meet only peers of the same room (an app's name, say). */
  readonly room: string
  /** The leaf's replica, kept in step with its router (a `RouterLink`); its `author` is this peer's id. */
  readonly replica: Replica
  readonly rtc: RtcFactory
  readonly rtcOptions?: RtcOptions
  /**
   * Signs this peer's offers, answers and marks, and says whether unsigned ones count (§18.2): the replica's
   * author must then be the signer's key-bound peer id. Without it, nothing is signed and everything counts.
   */
  readonly signing?: SignalIdentity
  /** The router this peer hangs off, by name: peers behind the same router are answered first. */
  readonly router?: string
  /**
   * Hops from this peer's router to another router, by name (undefined: not known). Offers from nearer
   * routers are answered first; `join` derives it from the routers' `malla-links` table.
   */
  readonly hopsTo?: (router: string) => number | undefined
  /**
   * Whether a peer is known to have left without withdrawing its offers (a tab closed before its withdrawal
   * reached the router): its offers are not answered, since nobody would complete them. `join` derives it from
   * the room's presence (`departedPeers`).
   */
  readonly isGone?: (peer: string) => boolean
  /** Connections this peer goes looking for, by answering others' offers (default 3). */
  readonly target?: number
  /** Connections it accepts at most; past it, it withdraws its offers (default 6). */
  readonly max?: number
  /** Open offers kept published while below `max` (default 3). */
  readonly pool?: number
  /**
   * Wall-clock life of a published offer, renewed at half of it while it stays open (default 180 s): a stable
   * room's only writes are these renewals, so this sets how quiet it is.
   */
  readonly offerLifeMs?: number
  /** From publishing an answer (or applying one) to an open channel, at most (default 10 s). */
  readonly connectTimeoutMs?: number
  /** Hard bound on RTCPeerConnections this peer holds at once, whatever happens (default max + pool + 2). */
  readonly maxPeerConnections?: number
  /**
   * Largest message a peer may send on a connection's app channel (default 64 MiB): the channel holds one such
   * message while it arrives. An app whose messages are all small (malla/trystero) lowers it.
   */
  readonly maxMessageBytes?: number
  readonly now?: () => number
  readonly log?: Logger
}

/** One open connection to another peer, with typed messages. */
export interface MeshPeer {
  readonly id: string
  /** Whether this side published the offer of this connection. */
  readonly offerer: boolean
  readonly router: string | undefined
  /**
   * The fingerprint of the OpenPGP key that signed this connection's offer or answer (§18.2): whose key the far
   * end holds, as far as signaling can tell. Undefined when its records were not signed (and were accepted).
   */
  readonly signer: string | undefined
  /** The connection's second channel, which the overlay's sync uses (app messages never wait behind it). */
  readonly syncChannel: RtcChannel
  /** The connection's third channel, for bulk transfers (`FileTransfers`): app messages and sync never wait behind it. */
  readonly fileChannel: RtcChannel
  send(value: MessageValue, onProgress?: (p: Progress) => void): Promise<void>
  on<E extends keyof MeshPeerEvents>(event: E, listener: MeshPeerEvents[E]): Unsubscribe
  close(): void
}

export interface MeshPeerEvents {
  message(value: MessageValue, kind: MessageKind): void
  progress(p: Progress): void
  close(reason: RtcCloseReason): void
}

export interface MeshEvents {
  /** A connection opened. */
  peer(peer: MeshPeer): void
  /** A connection ended (closed by either side, failed, or dropped as a duplicate). */
  'peer-closed'(peer: MeshPeer, reason: RtcCloseReason | 'duplicate'): void
  /**
   * A connection to `peer` opened with a certificate other than the one its signed description named, and was
   * closed: someone between the two (a router, a peer relaying) rewrote the description (§18.2).
   */
  'certificate-mismatch'(peer: string): void
}

export interface MeshStats {
  readonly connected: number
  readonly openOffers: number
  readonly pendingAnswers: number
  /** RTCPeerConnections held now, and the most ever held at once. */
  readonly peerConnections: number
  readonly peakPeerConnections: number
  readonly offersPublished: number
  readonly answersPublished: number
  /** Answers of ours that another answerer's beat. */
  readonly racesLost: number
  /** Pairs that answered each other's offers at once; exactly one of the two attempts is kept. */
  readonly glare: number
  /** Attempts that timed out or failed before their channel opened. */
  readonly failed: number
  /**
   * Connections closed at once because the other end's DTLS certificate was not the one its (signed) description
   * named: someone in between rewrote it. Each is also one of `failed`.
   */
  readonly certificateMismatch: number
  /** Signaling entries skipped: malformed, unsigned where signatures are required, forged (refused on arrival too). */
  readonly ignored: { readonly offers: number; readonly answers: number }
}

type Link = {
  readonly remote: string
  readonly offerer: string
  readonly offer: string
  readonly peer: MeshPeerImpl
}

const DEFAULTS = { target: 3, max: 6, pool: 3, offerLifeMs: 180_000, connectTimeoutMs: 10_000 }
/** How often wall-clock deadlines are looked at (expiries, renewals, give-ups). */
const HOUSEKEEPING_MS = 1000
/** How many offers that failed it remembers, so as not to answer them again (the oldest is forgotten first). */
const FAILED_OFFER_MEMORY = 512
/**
 * How long the offers of a key whose offer failed here are not answered. A key can publish offers under new
 * session ids as fast as it likes: without this, decoys (offers that lead nowhere) would each cost a connect
 * timeout. A person whose page really failed once is answered again after it.
 */
const SIGNER_COOLDOWN_MS = 60_000
/** Connections a peer takes past `max` when they are directed (connectTo): a person chose them. */
const DIRECT_EXTRA = 2
/** The longest a taken mark waits for its attempt to open (see `takeAnswers`). */
const MARK_DELAY_MS = 150
/** Renewals of one offer before it is replaced: its TTL then stays below LibreMesh's default of 30. */
const MAX_RENEWALS = 20
/**
 * After attempts fail in a row, a peer waits before it starts new ones (answers, and offers beyond those it
 * holds): from CALM_MIN_MS, doubling up to CALM_MAX_MS, until one opens. On a starved CPU every attempt that
 * misses its deadline would otherwise be replaced at once, and the handshakes of the new ones starve the
 * others more (measured: 20 werift peers on 2 cores never settled without this).
 */
const CALM_MIN_MS = 500
const CALM_MAX_MS = 8000

/**
 * The article's algorithm, over shared-state (docs/protocol.md §12):
 * - keep `pool` offers published while below `max` connections, replacing each one that gets taken;
 * - while below `target`, answer others' offers: same router first, then the fewest hops, skipping offers
 *   someone else has answered, in an order of each peer's own (so answerers spread over the offers);
 * - the offerer applies the first answer it sees for an offer (among answers seen together, the lowest
 *   answerer id) and marks the offer taken by that answerer; any other answerer sees the mark (or the
 *   offer gone, or expired) and gives up at once;
 * - glare (two peers answering each other's offers): the attempt on the offer of the lower id is kept,
 *   by both sides independently; if both channels open anyway, the same rule closes one;
 * - offers expire by wall clock (renewed while open) and fade by bleach; open offers and pending answers are
 *   withdrawn on close (answers and taken marks of opened connections just expire).
 */
export class Mesh {
  readonly id: string
  private readonly emitter = createNanoEvents<MeshEvents>()
  private readonly tables: SignalTables
  private readonly log: Logger
  private readonly now: () => number
  private target: number
  private readonly max: number
  private readonly pool: number
  private readonly offerLifeMs: number
  private readonly connectTimeoutMs: number
  private readonly maxPcs: number
  /** Every attempt under way, in its state (attempts.ts): offers, answers, directed connections. */
  private readonly attempts: Attempts
  private readonly links = new Map<string, Link[]>()
  private nextDirect = 1
  private readonly failedOffers = new Set<string>()
  /** Keys whose offers failed here, and until when theirs are not answered (see SIGNER_COOLDOWN_MS). */
  private readonly failedSigners = new Map<string, number>()
  /** The tables as the last step saw them. */
  private lastView: TablesView | undefined
  private nextOffer = 0
  private started = false
  private closed = false
  private ticking = false
  private tickAgain = false
  private timer: ReturnType<typeof setInterval> | undefined
  private offChange: Unsubscribe | undefined
  private peak = 0
  /** Attempts failed in a row, and until when no new one starts (see CALM_MIN_MS). */
  private failuresInRow = 0
  private calmUntil = 0
  private readonly counts = { offersPublished: 0, answersPublished: 0, racesLost: 0, glare: 0, failed: 0, certificateMismatch: 0 }

  constructor(private readonly options: MeshOptions) {
    checkRoomName(options.room)
    this.id = options.replica.author
    if (!PEER_ID_PATTERN.test(this.id)) throw new MallaError('BAD_INPUT', `the replica's author ${JSON.stringify(this.id)} is not a peer id (8-32 of [a-z0-9])`)
    this.tables = new SignalTables(options.replica, options.room, options.signing)
    this.log = options.log ?? silentLogger
    this.now = options.now ?? Date.now
    this.attempts = new Attempts(this.now)
    this.target = options.target ?? DEFAULTS.target
    this.max = Math.max(this.target, options.max ?? DEFAULTS.max)
    if (!Number.isInteger(this.target) || this.target < 0) throw new MallaError('BAD_INPUT', `target must be a whole number ≥ 0, not ${this.target}`)
    this.pool = options.pool ?? DEFAULTS.pool
    this.offerLifeMs = options.offerLifeMs ?? DEFAULTS.offerLifeMs
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs
    this.maxPcs = options.maxPeerConnections ?? this.max + this.pool + 2
  }

  on<E extends keyof MeshEvents>(event: E, listener: MeshEvents[E]): Unsubscribe {
    return this.emitter.on(event, listener)
  }

  /** Starts publishing and answering; reacts to every change of the signaling tables from now on. */
  start(): void {
    if (this.started) return
    this.started = true
    // On 'applied', not 'change': the tables are read from that event (SignalTables), so an answer is acted
    // on while the replica is still storing it.
    this.offChange = this.options.replica.on('applied', (e) => {
      if (this.tables.holds(e.type)) this.tick()
    })
    this.timer = setInterval(() => this.tick(), HOUSEKEEPING_MS)
    this.tick()
  }

  /**
   * Changes how many connections this peer goes looking for (at most `max`): raise it to connect now,
   * lower it to stop answering offers. Existing connections stay either way.
   */
  setTarget(target: number): void {
    if (!Number.isInteger(target) || target < 0) throw new MallaError('BAD_INPUT', `target must be a whole number ≥ 0, not ${target}`)
    this.target = Math.min(target, this.max)
    this.tick()
  }

  /**
   * The signaling tables as this peer's replica holds them now, read and checked as the mesh reads them
   * (for tests and bench/signaling.ts, which wait until a peer holds another's offer; read-only).
   */
  view(): Promise<TablesView> {
    return this.tables.read()
  }

  /** The peers connected now, one per remote id. */
  peers(): MeshPeer[] {
    return [...this.links.values()].map((l) => (l[0] as Link).peer)
  }

  stats(): MeshStats {
    return {
      connected: this.links.size,
      openOffers: this.attempts.list('offer', 'gathering', 'published').length,
      pendingAnswers: this.attempts.list('answer').length,
      peerConnections: this.pcCount(),
      peakPeerConnections: this.peak,
      ...this.counts,
      ignored: this.tables.ignored(),
    }
  }

  /** Closes every connection and withdraws every offer and answer of this peer. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.offChange?.()
    this.tables.close()
    clearInterval(this.timer)
    // Taken offers and opened answers are not withdrawn: they expire (SHORT_SIGNAL_TTL), as after an open.
    const offerKeys = this.attempts.list('offer', 'gathering', 'published').map((o) => o.key)
    const answerKeys = this.attempts.list('answer').map((a) => a.key)
    for (const a of this.attempts.endAll()) a.rtc.close()
    for (const list of [...this.links.values()]) for (const l of list) l.peer.close()
    await Promise.all([this.tables.withdraw('offers', offerKeys), this.tables.withdraw('answers', answerKeys)]).catch((e: Error) =>
      this.log.warn('could not withdraw signaling records', { error: e.message }),
    )
  }

  /** Looks at the tables and acts; calls that arrive while one runs are folded into one more run. */
  private tick(): void {
    if (this.closed) return
    if (this.ticking) {
      this.tickAgain = true
      return
    }
    this.ticking = true
    void (async () => {
      try {
        do {
          this.tickAgain = false
          await this.step(await this.tables.read())
        } while (this.tickAgain && !this.closed)
      } catch (e) {
        this.log.error('signaling step failed', { error: (e as Error).message })
      } finally {
        this.ticking = false
      }
    })()
  }

  private async step(view: TablesView): Promise<void> {
    this.lastView = view
    const now = this.now()
    const offers = new Map(view.offers.map((o) => [o.key, o.record]))
    await this.takeAnswers(view.answers.filter((a) => a.record.to === this.id && a.record.expiresAt > now).map((a) => a.record))
    this.dropLostAnswers(offers, now)
    await this.expireAndRenew(now)
    // close() may have run while this step awaited: it must not start anything new after that.
    if (this.closed) return
    const calm = now < this.calmUntil
    if (!calm) this.answerOffers(view, now)
    this.fillPool(calm)
  }

  /** Offerer side: apply one answer per open offer of ours. */
  private async takeAnswers(answers: AnswerRecord[]): Promise<void> {
    const byOffer = new Map<OfferAttempt, AnswerRecord[]>()
    for (const a of answers) {
      const own = this.attempts.ownOffer(a.offer)
      if (!own || own.state !== 'published') {
        // Stale: an offer that is gone or already taken. A rival of the answer taken must hear it at once.
        if (own?.state === 'taken' && own.remote !== a.peer) own.markTaken?.()
        continue
      }
      byOffer.set(own, [...(byOffer.get(own) ?? []), a])
    }
    for (const [own, list] of byOffer) {
      const key = own.key
      const winner = pickAnswer(list.filter((a) => !this.hasLinkOrAttempt(a.peer, 'answer-to-me')).filter((a) => this.settleGlare(a.peer)))
      if (!winner || !this.attempts.move(own, 'taken')) continue
      const mark = takenData({ by: winner.peer, expiresAt: own.expiresAt })
      let marked = false
      own.remote = winner.peer
      own.signer = winner.signer
      own.remoteFingerprint = winner.session.fingerprint
      own.markTaken = () => {
        if (marked || this.closed) return
        marked = true
        void this.tables.write('offers', [[key, mark]], SHORT_SIGNAL_TTL).catch((e: Error) => this.log.warn('could not mark an offer taken', { offer: key, error: e.message }))
      }
      const markTaken = own.markTaken
      // The answer first: the connection is what the answerer waits for; the mark only tells the others.
      // Written at once, it and its echo through the router take both pages' main threads during the
      // handshake (about 1 ms of the median in bench/signaling). So, alone, it follows once the attempt has
      // opened or ended, or after MARK_DELAY_MS at most. With a rival answer in sight it goes at once: the
      // rival's checks reach this offer's one ICE agent, and its DTLS hello can take the handshake.
      own.rtc.acceptAnswer(toSdp(winner.session, 'answer')).catch((e: Error) => {
        this.log.warn('answer refused', { offer: key, from: winner.peer, error: e.message })
        own.rtc.close()
      })
      if (list.length > 1) markTaken()
      else void settled(own.rtc, MARK_DELAY_MS).then(markTaken)
    }
  }

  /**
   * Glare: this peer has an answer out to an offer of `remote`, and `remote` answered one of ours. Both
   * sides keep the attempt on the offer of the lower id. Returns whether the answer of `remote` to our
   * offer may be taken.
   */
  private settleGlare(remote: string): boolean {
    const mine = this.attempts.list('answer').find((a) => a.remote === remote)
    if (!mine) return true
    if (glare(this.id, remote) === 'take-theirs') {
      this.counts.glare++
      this.abandonAnswer(mine, 'glare')
      return true
    }
    return false
  }

  /** Answerer side: give up answers whose offer went to someone else, was withdrawn, or expired. */
  private dropLostAnswers(offers: ReadonlyMap<string, TablesView['offers'][number]['record']>, now: number): void {
    for (const a of this.attempts.list('answer')) {
      const over = answerOver(offers.get(a.offer), { self: this.id, startedAt: a.startedAt, now, connectTimeoutMs: this.connectTimeoutMs })
      if (over === undefined) continue
      if (over === 'lost') this.counts.racesLost++
      this.abandonAnswer(a, over)
      if (over === 'timeout') this.attemptFailed()
    }
    for (const a of this.attempts.list('offer', 'taken')) {
      if (now - a.enteredAt > openDeadline(this.failuresInRow, this.connectTimeoutMs) && this.attempts.end(a)) {
        // Most often another answerer's checks reached this offer's ICE agent first and its DTLS hello
        // won the handshake. Withdrawing the offer tells the answerer at once, and both try again elsewhere.
        this.counts.failed++
        this.attemptFailed()
        this.log.debug('taken offer never opened', { offer: a.key, answerer: a.remote, rtc: a.rtc.state })
        a.rtc.close()
        void this.tables.withdraw('offers', [a.key]).catch(() => {})
      }
    }
  }

  private abandonAnswer(a: AnswerAttempt, why: string): void {
    if (!this.attempts.end(a)) return
    this.log.debug('answer abandoned', { offer: a.offer, why })
    if (why === 'timeout') this.rememberFailed(a.offer)
    a.rtc.close()
    void this.tables.withdraw('answers', [a.key]).catch(() => {})
  }

  /**
   * Renews own open offers before they expire. Each renewal is a rewrite one TTL higher (see
   * `SignalTables.write`), so an offer is renewed a bounded number of times and then replaced by a fresh one.
   */
  private async expireAndRenew(now: number): Promise<void> {
    const renew: Array<[string, Json]> = []
    const retire: string[] = []
    for (const o of this.attempts.list('offer', 'published')) {
      if (!o.session) continue
      if (o.expiresAt - now >= this.offerLifeMs / 2) continue
      if (o.renewals >= MAX_RENEWALS) {
        this.attempts.end(o)
        o.rtc.close()
        retire.push(o.key)
        continue
      }
      o.renewals++
      o.expiresAt = now + this.offerLifeMs
      renew.push([o.key, offerData({ room: this.options.room, router: this.options.router, session: compactSession(o.session), expiresAt: o.expiresAt })])
    }
    if (renew.length > 0) await this.tables.write('offers', renew)
    if (retire.length > 0) await this.tables.withdraw('offers', retire)
  }

  /** Answerer side: while below target, answer the best offers. */
  private answerOffers(view: TablesView, now: number): void {
    const inFlight = this.attempts.list('answer').length + this.attempts.list('offer', 'taken').length
    const room = Math.min(this.target - this.links.size - inFlight, this.maxPcs - this.pcCount(), attemptsAtOnce(this.failuresInRow, Number.POSITIVE_INFINITY) - inFlight)
    const chosen = offersToAnswer(view, { self: this.id, now, room, failed: this.failedOffers, busyWith: (peer) => this.hasLinkOrAttempt(peer, 'any'), hops: (router) => this.hops(router), ...(this.options.isGone ? { gone: this.options.isGone } : {}), failedSigner: (fpr) => (this.failedSigners.get(fpr) ?? 0) > now, answeringSigner: (fpr) => this.attempts.list('answer').some((a) => a.signer === fpr) })
    for (const { key, record } of chosen) this.answer(key, record)
  }

  private answer(key: string, offer: OfferRecord): void {
    const rtc = this.makePeer(`answer to ${key}`)
    const own = this.attempts.answer({ key: answerKey(key, this.id), offer: key, remote: offer.peer, router: offer.router, signer: offer.signer, remoteFingerprint: offer.session.fingerprint, rtc })
    this.watchAttempt(own, () => {
      this.counts.failed++
      this.attemptFailed()
      this.rememberFailed(key)
      // An offerer that did not complete this answer (gone, or unreachable from here) will not complete its
      // other offers either: each would cost another connect timeout. Its new offers are answered; a key's, only
      // after a while, since a key can publish new ones under new session ids as fast as it likes.
      this.rememberOffersOf(offer.peer)
      if (offer.signer !== undefined) this.rememberFailedSigner(offer.signer)
      void this.tables.withdraw('answers', [own.key]).catch(() => {})
    })
    void (async () => {
      try {
        const sdp = await rtc.acceptOffer(toSdp(offer.session, 'offer'))
        if (!this.attempts.is(own) || this.closed) return rtc.close()
        const now = this.now()
        await this.tables.write('answers', [[own.key, answerData({ session: compactSession(withoutShadowedNames(sessionFacts(sdp))), expiresAt: now + this.connectTimeoutMs })]], SHORT_SIGNAL_TTL)
        this.counts.answersPublished++
      } catch (e) {
        this.log.warn('could not answer', { offer: key, error: (e as Error).message })
        this.rememberFailed(key)
        rtc.close()
      }
    })()
  }

  /**
   * Keeps `pool` offers published while below `target` connections, one from `target` to `max` (enough for a
   * newcomer to find this peer, and a stable room then writes one renewal a peer every 90 s), none at `max`.
   */
  private fillPool(calm = false): void {
    const pool = offersWanted(this.links.size, { target: this.target, max: this.max, pool: attemptsAtOnce(this.failuresInRow, this.pool) })
    let open = this.attempts.list('offer', 'gathering', 'published')
    if (open.length > pool && this.links.size < this.max) {
      // Surplus offers go, newest first; one that is still gathering stays until it settles.
      const drop = open.filter((o) => o.state === 'published').reverse().slice(0, open.length - pool)
      for (const o of drop) {
        this.attempts.end(o)
        o.rtc.close()
      }
      if (drop.length > 0) void this.tables.withdraw('offers', drop.map((o) => o.key)).catch(() => {})
      open = this.attempts.list('offer', 'gathering', 'published')
    }
    // An offer just taken keeps its slot until its attempt opens or fails: gathering a new one meanwhile
    // would compete with applying the answer, which the answerer is waiting for.
    const settling = this.attempts.list('offer', 'taken').length
    if (this.links.size >= this.max) {
      for (const o of open) {
        this.attempts.end(o)
        o.rtc.close()
      }
      if (open.length > 0) void this.tables.withdraw('offers', open.map((o) => o.key)).catch(() => {})
      return
    }
    if (calm) return
    for (let n = open.length + settling; n < pool && this.pcCount() < this.maxPcs; n++) this.offer()
  }

  private offer(): void {
    const key = offerKey(this.id, this.nextOffer++)
    const rtc = this.makePeer(`offer ${key}`)
    const own = this.attempts.offer({ key, rtc, expiresAt: this.now() + this.offerLifeMs, renewals: 0 })
    this.watchAttempt(own, (was) => {
      if (was === 'taken') {
        this.counts.failed++
        this.attemptFailed()
      } else void this.tables.withdraw('offers', [key]).catch(() => {})
    })
    void (async () => {
      try {
        const sdp = await rtc.createOffer()
        if (!this.attempts.is(own) || this.closed) return rtc.close()
        own.session = withoutShadowedNames(sessionFacts(sdp))
        // Its life counts from publication, not from when gathering began.
        own.expiresAt = this.now() + this.offerLifeMs
        await this.tables.write('offers', [[key, offerData({ room: this.options.room, router: this.options.router, session: compactSession(own.session), expiresAt: own.expiresAt })]])
        // Answers are taken only once it is published: one that came meanwhile is seen at the next look.
        if (!this.attempts.move(own, 'published')) return
        this.counts.offersPublished++
      } catch (e) {
        this.log.warn('could not make an offer', { error: (e as Error).message })
        rtc.close()
      }
    })()
  }

  private makePeer(label: string): RtcPeer {
    const rtc = this.options.rtc({ connectTimeoutMs: this.connectTimeoutMs, ...this.options.rtcOptions, label })
    // Counted from creation: the bound holds for gathering attempts too.
    queueMicrotask(() => (this.peak = Math.max(this.peak, this.pcCount())))
    return rtc
  }

  /**
   * Wires an attempt's RtcPeer: on open, a taken offer or an answer becomes a link; on a close before that,
   * the attempt ends and `failed` runs, told the state it was in (unless something else ended it first, which
   * then did the cleaning up). Either way the tables are looked at again.
   */
  private watchAttempt(a: OfferAttempt | AnswerAttempt, failed: (was: Attempt['state']) => void): void {
    const rtc = a.rtc
    rtc.on('open', () => {
      // An offer opens only once an answer was applied (taken); anything else is a stray: closed.
      const remote = a.remote
      if (this.closed || remote === undefined || !this.attempts.is(a, 'taken', 'answering')) return rtc.close()
      // The stack checked the certificate against the description it was given; this checks it against the
      // (signed) one the other end published. A mismatch means someone between them rewrote it: closed, and
      // it ends as a failed attempt.
      const seen = rtc.remoteCertificateSha256()
      if (seen !== undefined && a.remoteFingerprint !== undefined && seen !== a.remoteFingerprint) {
        this.counts.certificateMismatch++
        this.log.warn('closed a connection whose certificate is not the one its description named', { with: remote, expected: a.remoteFingerprint, seen })
        this.emitter.emit('certificate-mismatch', remote)
        return rtc.close()
      }
      if (!this.attempts.move(a, 'linked')) return rtc.close()
      if (a.kind === 'offer') this.addLink(remote, this.id, a.key, undefined, rtc, a.signer)
      else this.addLink(remote, a.remote, a.offer, a.router, rtc, a.signer)
      // Answers and taken marks are not withdrawn: they expire, and bleach drops them (SHORT_SIGNAL_TTL).
      this.tick()
    })
    rtc.on('close', (reason, detail) => {
      const was = a.state
      if (this.attempts.end(a)) {
        this.log.debug('attempt ended before it opened', { with: a.remote, reason, detail })
        failed(was)
      }
      this.tick()
    })
  }

  private addLink(remote: string, offerer: string, offer: string, router: string | undefined, rtc: RtcPeer, signer?: string): void {
    const peer = new MeshPeerImpl(remote, offerer === this.id, router, rtc, signer, this.options.maxMessageBytes)
    const link: Link = { remote, offerer, offer, peer }
    // Two channels to one peer (glare that both sides resolved too late): both keep the same one.
    const { keep, drop } = keptConnection([...(this.links.get(remote) ?? []), link])
    this.links.set(remote, [keep])
    rtc.on('close', (reason) => {
      const current = this.links.get(remote)
      if (current?.[0] === link) {
        this.links.delete(remote)
        // The peer closed, failed or went silent: the offers it had out were made before that, and if it closed
        // its tab they linger until they expire. Answering one would cost a connect timeout; a live peer
        // publishes new offers, and those are answered.
        if (reason !== 'local') this.rememberOffersOf(remote)
        this.emitter.emit('peer-closed', peer, peer.timedOut ? 'timeout' : reason)
      }
    })
    for (const d of drop) {
      this.counts.glare++
      if (d === link) {
        rtc.close()
        return
      }
      this.links.set(remote, [keep])
      this.emitter.emit('peer-closed', d.peer, 'duplicate')
      d.peer.close()
    }
    this.failuresInRow = 0
    this.calmUntil = 0
    this.log.info('connected', { peer: remote, offerer: offerer === this.id })
    this.emitter.emit('peer', peer)
  }

  /**
   * Opens a connection to one chosen peer, whose offer and answer travel by `carry` (the overlay's routed
   * messages) instead of the tables: `carry` takes this side's compact offer and resolves with the remote's
   * compact answer. Resolves with the connection once open (at once when one exists already). Rejects with
   * PEER when the attempt fails or times out, BUSY when this peer holds too many connections already.
   * Directed connections may go `DIRECT_EXTRA` past `max`: a person chose them.
   */
  async connectTo(remote: string, carry: (offer: CompactSession) => Promise<unknown>): Promise<MeshPeer> {
    const existing = this.links.get(remote)?.[0]
    if (existing) return existing.peer
    this.checkDirect(remote)
    const key = `${this.id}.d${this.nextDirect++}`
    const rtc = this.makePeer(`direct offer ${key} to ${remote}`)
    const opened = this.directAttempt(this.attempts.direct({ key, remote, offerer: this.id, rtc }))
    // Its rejection is this call's when the offer or answer fails first (below): not left unhandled then.
    opened.catch(() => {})
    try {
      const offer = compactSession(withoutShadowedNames(sessionFacts(await rtc.createOffer())))
      const answer = expandSession(await carry(offer))
      await rtc.acceptAnswer(toSdp(answer, 'answer'))
    } catch (e) {
      rtc.close()
      throw e instanceof MallaError ? e : new MallaError('PEER', `could not connect to ${remote}: ${(e as Error).message}`, { cause: e })
    }
    return opened
  }

  /**
   * The answering side of `connectTo`: answers `offer` (a compact session from `remote`) and resolves with
   * this side's compact answer; the connection joins this mesh's links when it opens. Rejects with BUSY when
   * this peer holds too many connections, BAD_INPUT for an offer that is not one, PEER when answering fails.
   */
  async acceptDirect(remote: string, offer: unknown): Promise<CompactSession> {
    if (this.links.has(remote)) throw new MallaError('BAD_INPUT', `already connected to ${remote}`)
    this.checkDirect(remote)
    const facts = expandSession(offer)
    const key = `${remote}.d${this.nextDirect++}`
    const rtc = this.makePeer(`direct answer to ${remote}`)
    void this.directAttempt(this.attempts.direct({ key, remote, offerer: remote, rtc })).catch(() => {})
    try {
      return compactSession(withoutShadowedNames(sessionFacts(await rtc.acceptOffer(toSdp(facts, 'offer')))))
    } catch (e) {
      rtc.close()
      throw e
    }
  }

  private checkDirect(remote: string): void {
    if (this.closed) throw new MallaError('PEER', 'the mesh is closed')
    if (this.attempts.list('direct').some((d) => d.remote === remote)) throw new MallaError('BUSY', `a directed attempt with ${remote} is under way`)
    if (this.links.size >= this.max + DIRECT_EXTRA || this.pcCount() >= this.maxPcs + DIRECT_EXTRA) throw new MallaError('BUSY', `this peer holds ${this.links.size} connections already`)
  }

  /** Resolves with the connection when its RtcPeer opens (it joins the links), rejects when it ends before. */
  private directAttempt(a: DirectAttempt): Promise<MeshPeer> {
    const { remote, rtc } = a
    return new Promise((resolve, reject) => {
      rtc.on('open', () => {
        if (this.closed || !this.attempts.move(a, 'linked')) return rtc.close()
        this.addLink(remote, a.offerer, a.key, undefined, rtc)
        const link = this.links.get(remote)?.[0]
        if (link) resolve(link.peer)
        else reject(new MallaError('PEER', `the connection to ${remote} was dropped as a duplicate`))
        this.tick()
      })
      rtc.on('close', (reason, detail) => {
        this.attempts.end(a)
        reject(new MallaError('PEER', `the directed connection to ${remote} ended: ${reason}${detail ? ` (${detail})` : ''}`))
      })
    })
  }

  /** Whether a link to `remote` exists, or an attempt that would make one. */
  private hasLinkOrAttempt(remote: string, what: 'any' | 'answer-to-me'): boolean {
    if (this.links.has(remote)) return true
    if (this.attempts.list('offer', 'taken').some((a) => a.remote === remote)) return true
    return what === 'any' && this.attempts.list('answer').some((a) => a.remote === remote)
  }

  /** 0 for this peer's own router, then hops as far as known; unknown routers come last (a large number, not Infinity: it is subtracted). */
  private hops(router: string | undefined): number {
    if (router === undefined) return UNKNOWN_HOPS
    if (router === this.options.router) return 0
    return this.options.hopsTo?.(router) ?? UNKNOWN_HOPS
  }

  /** One more attempt failed in a row: no new attempt for a while (CALM_MIN_MS). */
  private attemptFailed(): void {
    this.failuresInRow++
    this.calmUntil = this.now() + Math.min(CALM_MAX_MS, CALM_MIN_MS * 2 ** Math.min(this.failuresInRow - 1, 8))
  }

  /** Every offer `peer` has out now, as the last step saw them, counts as failed: none is answered. */
  private rememberOffersOf(peer: string): void {
    for (const o of this.lastView?.offers ?? []) if (o.record !== 'withdrawn' && o.record.peer === peer) this.rememberFailed(o.key)
  }

  /** `fingerprint`'s offers are not answered for SIGNER_COOLDOWN_MS, however many session ids it publishes them under. */
  private rememberFailedSigner(fingerprint: string): void {
    if (this.failedSigners.size >= FAILED_OFFER_MEMORY) this.failedSigners.delete(this.failedSigners.keys().next().value as string)
    this.failedSigners.delete(fingerprint)
    this.failedSigners.set(fingerprint, this.now() + SIGNER_COOLDOWN_MS)
  }

  private rememberFailed(offer: string): void {
    if (this.failedOffers.size >= FAILED_OFFER_MEMORY) this.failedOffers.delete(this.failedOffers.values().next().value as string)
    this.failedOffers.add(offer)
  }

  private pcCount(): number {
    let n = this.attempts.size
    for (const l of this.links.values()) n += l.length
    return n
  }
}

class MeshPeerImpl implements MeshPeer {
  private readonly channel: FramedChannel
  private readonly emitter = createNanoEvents<MeshPeerEvents>()
  /** Set when the keepalive found the peer silent: its close is then a 'timeout', not our own 'local'. */
  timedOut = false

  constructor(
    readonly id: string,
    readonly offerer: boolean,
    readonly router: string | undefined,
    private readonly rtc: RtcPeer,
    readonly signer: string | undefined,
    maxMessageBytes: number | undefined,
  ) {
    this.channel = new FramedChannel(rtc, { onDead: () => (this.timedOut = true), ...(maxMessageBytes !== undefined ? { maxMessageBytes } : {}) })
    this.channel.on('message', (value, kind) => this.emitter.emit('message', value, kind))
    this.channel.on('progress', (p) => this.emitter.emit('progress', p))
    rtc.on('close', (reason) => {
      this.channel.close()
      this.emitter.emit('close', this.timedOut ? 'timeout' : reason)
    })
  }

  get syncChannel(): RtcChannel {
    return this.rtc.syncChannel
  }

  get fileChannel(): RtcChannel {
    return this.rtc.fileChannel
  }

  send(value: MessageValue, onProgress?: (p: Progress) => void): Promise<void> {
    return this.channel.send(value, onProgress)
  }

  on<E extends keyof MeshPeerEvents>(event: E, listener: MeshPeerEvents[E]): Unsubscribe {
    return this.emitter.on(event, listener)
  }

  close(): void {
    this.rtc.close()
  }
}

/** Resolves when `rtc` opens or closes, or after `ms`, whichever comes first. */
function settled(rtc: RtcPeer, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      offOpen()
      offClose()
      clearTimeout(timer)
      resolve()
    }
    const offOpen = rtc.on('open', done)
    const offClose = rtc.on('close', done)
    const timer = setTimeout(done, ms)
  })
}
