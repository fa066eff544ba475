import { writeOwn } from '../replica/own-writes.js'
import { isMallaError, MallaError } from '../core/errors.js'
import type { Entry, Json, TypeName } from '../core/types.js'
import type { Unsubscribe } from 'nanoevents'
import type { ChangeEvent, Replica } from '../replica/replica.js'
import { type AnswerRecord, isKeyBound, keyPeer, type OfferRecord, parseAnswerEntry, parseOfferEntry, type SignalTypes, signalTypes, SIGNAL_VERSION, type TakenRecord } from './signal-records.js'
import type { RecordChecker, RecordSigner } from './signed-records.js'

/**
 * Signaling records live only a few bleach rounds (a router bleaches every 2 minutes): an offer that
 * nobody withdrew fades from the routers within minutes, and its wall-clock expiry hides it long before.
 */
export const SIGNAL_TTL = 4
/**
 * Answers and taken marks matter only for the seconds a connection takes to open; they are not withdrawn
 * (a withdrawal is one more record on every link) but left to the routers' bleach, which drops a TTL of 2
 * within two rounds.
 */
export const SHORT_SIGNAL_TTL = 2

export type OfferView = { readonly key: string; readonly record: OfferRecord | TakenRecord } | { readonly key: string; readonly record: 'withdrawn' }

/** Who signs this peer's records, and whether records nobody signed count (§18.2). */
export interface SignalIdentity {
  /** Signs every record this peer writes; absent, they go unsigned. */
  readonly signer?: RecordSigner
  /**
   * Checks the signed records read (`checkRecord`, handed in so that its cryptography can load apart: see
   * signal-crypto.ts). Without it, no signed record can be checked, so none counts.
   */
  readonly check?: RecordChecker
  /** Entries the replica refused on arrival (`roomAdmission`), counted with those skipped here. */
  readonly refusedOnArrival?: () => { readonly offers: number; readonly answers: number }
  /**
   * Whether records nobody signed (and withdrawals as `null`) are read at all: default true without a signer,
   * false with one. A record of a key-bound peer id is never taken unsigned, whatever this says.
   */
  readonly acceptUnsigned?: boolean
}

/** What the signaling tables hold right now, read and checked, with what had to be skipped. */
export interface TablesView {
  readonly offers: readonly OfferView[]
  readonly answers: ReadonlyArray<{ readonly key: string; readonly record: AnswerRecord }>
}

/**
 * The signaling tables over a leaf's replica: writes with the right TTL, and reads that check every entry.
 * Entries that fail their checks are skipped and counted once each (by key and clock), never thrown:
 * anybody can write to shared-state, and one bad entry must not stop a page from connecting.
 */
export class SignalTables {
  /** Bad entries seen, by `type/key/clock`, so each is counted once however often it is read. */
  private readonly badSeen = new Set<string>()
  private badOffers = 0
  private badAnswers = 0
  /**
   * Each table as the replica's last `applied` event left it: a read then needs no turn in the replica's
   * queue behind the commit that is still saving it (a page reacts to an answer while it is being stored).
   */
  private readonly latest = new Map<TypeName, ReadonlyMap<string, Entry>>()
  /** Entries are never mutated, only replaced: each one is checked once, however often the tables are read. */
  private readonly parsed = new WeakMap<object, { readonly key: string; readonly record: OfferRecord | TakenRecord | AnswerRecord | 'gone' | null }>()
  private readonly offApplied: Unsubscribe
  /** The room's two types. */
  readonly types: SignalTypes

  private readonly signer: RecordSigner | undefined
  private readonly checker: RecordChecker | undefined
  private readonly refusedOnArrival: SignalIdentity['refusedOnArrival']
  private readonly acceptUnsigned: boolean

  constructor(
    private readonly replica: Replica,
    private readonly room: string,
    identity: SignalIdentity = {},
  ) {
    this.types = signalTypes(room)
    this.signer = identity.signer
    this.checker = identity.check
    this.refusedOnArrival = identity.refusedOnArrival
    this.acceptUnsigned = identity.acceptUnsigned ?? identity.signer === undefined
    if (this.signer && this.signer.peerId !== replica.author) throw new MallaError('BAD_INPUT', `the replica's author ${replica.author} is not the signer's peer id ${this.signer.peerId}`)
    const follow = (e: ChangeEvent) => {
      if (e.flavour === 'ttl' && this.holds(e.type)) this.latest.set(e.type, e.table as ReadonlyMap<string, Entry>)
    }
    // The same commit's 'change' follows its 'applied' with the same entries as a plain Map, which reads far
    // faster than the draft 'applied' hands out (read() goes over every entry at every look of the mesh).
    const offs = [replica.on('applied', follow), replica.on('change', follow)]
    this.offApplied = () => offs.forEach((off) => off())
  }

  /** Whether `type` is one of the room's signaling tables. */
  holds(type: TypeName): boolean {
    return type === this.types.offers || type === this.types.answers
  }

  /** Stops following the replica's events. */
  close(): void {
    this.offApplied()
  }

  get author(): string {
    return this.replica.author
  }

  /** Malformed or forged entries skipped so far, per table (and those the replica refused on arrival). */
  ignored(): { readonly offers: number; readonly answers: number } {
    const refused = this.refusedOnArrival?.()
    return { offers: this.badOffers + (refused?.offers ?? 0), answers: this.badAnswers + (refused?.answers ?? 0) }
  }

  /** Writes own records, signed when this peer signs, each rewrite one TTL higher than the last copy (see `writeOwn`). */
  async write(table: keyof SignalTypes, values: ReadonlyArray<readonly [string, Json]>, baseTtl = SIGNAL_TTL): Promise<void> {
    const type = this.types[table]
    const signer = this.signer
    // A signed offer says when unsigned answers are welcome (`u`): peers without a key skip the others, as their
    // answers would be refused, and their checks would only reach the offer's ICE agent beside the real answerer's.
    const welcome = (v: { readonly [k: string]: Json }) => (table === 'offers' && this.acceptUnsigned && 's' in v ? { ...v, u: 1 } : v)
    const signed = signer ? values.map(([k, v]) => [k, v !== null && typeof v === 'object' && !Array.isArray(v) ? signer.sign(type, k, welcome(v)) : v] as const) : values
    await writeOwn(this.replica, type, signed, baseTtl)
  }

  /**
   * Withdraws own records: `data: null`, which spreads like any write (and, as a rewrite, climbs in TTL); a
   * signing peer writes a signed `{"gone": true}` instead, since anyone could write a `null`.
   */
  async withdraw(table: keyof SignalTypes, keys: readonly string[]): Promise<void> {
    const entries = (await this.replica.read({ flavour: 'ttl', type: this.types[table] })).table as ReadonlyMap<string, Entry>
    const mine = keys.filter((k) => {
      const e = entries.get(k)
      return e !== undefined && e.author === this.replica.author && e.data !== null && e.data !== undefined
    })
    if (mine.length > 0) await this.write(table, mine.map((k) => [k, this.signer ? { v: SIGNAL_VERSION, gone: true } : null] as const))
  }

  async read(): Promise<TablesView> {
    const { offers: offersType, answers: answersType } = this.types
    const [offerTable, answerTable] = await Promise.all([this.table(offersType), this.table(answersType)])
    const offers: OfferView[] = []
    for (const [key, entry] of offerTable) {
      if (entry.data === null || entry.data === undefined) {
        // Anyone can write a null: it withdraws only the offers of peers that do not sign, when those count.
        if (this.acceptUnsigned && !isKeyBound(keyPeer('offers', key))) offers.push({ key, record: 'withdrawn' })
        continue
      }
      if (isGone(entry.data)) {
        if (this.check(offersType, key, entry, () => this.signedBy(offersType, key, keyPeer('offers', key), entry.data, 'gone'))) offers.push({ key, record: 'withdrawn' })
        continue
      }
      const record = this.check(offersType, key, entry, () => this.signedBy(offersType, key, undefined, entry.data, parseOfferEntry(key, entry.data)))
      if (!record) continue
      // An offer of another room written into this room's table: somebody's mistake or mischief.
      if (record.kind === 'offer' && record.room !== this.room) {
        this.countBad(offersType, key, entry)
        continue
      }
      // Taken marks name no room: only the answerers of that very offer look at them.
      if (record.peer !== entry.author) this.countBad(offersType, key, entry)
      // A signed offer that takes only signed answers is not this unsigned peer's to answer.
      else if (record.kind === 'offer' && !this.signer && record.signer !== undefined && (entry.data as { u?: unknown }).u !== 1) continue
      else offers.push({ key, record })
    }
    const answers: Array<{ key: string; record: AnswerRecord }> = []
    for (const [key, entry] of answerTable) {
      if (entry.data === null || entry.data === undefined || isGone(entry.data)) continue
      const record = this.check(answersType, key, entry, () => this.signedBy(answersType, key, undefined, entry.data, parseAnswerEntry(key, entry.data)))
      // An answer names no room either: it is for the offer in its key, which only its offerer reads.
      if (!record) continue
      if (record.peer === entry.author) answers.push({ key, record })
      else this.countBad(answersType, key, entry)
    }
    return { offers, answers }
  }

  /**
   * `record`, parsed from entry `key`'s `data`, once its signature is checked: with the signer's fingerprint
   * when signed; as it is when unsigned and unsigned records count. Throws BAD_INPUT otherwise.
   */
  private signedBy<T extends OfferRecord | TakenRecord | AnswerRecord | 'gone'>(type: TypeName, key: string, peer: string | undefined, data: unknown, record: T): T {
    const who = peer ?? (record as Exclude<T, 'gone'>).peer
    const signed = data !== null && typeof data === 'object' && 'pgp' in data
    if (signed && !this.checker) throw new MallaError('BAD_INPUT', `record ${key} is signed, and this peer checks no signatures`)
    if (!signed && isKeyBound(who)) throw new MallaError('BAD_INPUT', `record ${key} of a key-bound peer is not signed`)
    const check = signed && this.checker ? this.checker(type, key, who, data) : { signed: false as const }
    if (!check.signed) {
      if (!this.acceptUnsigned) throw new MallaError('BAD_INPUT', `record ${key} is not signed`)
      return record
    }
    return record === 'gone' ? record : { ...(record as Exclude<T, 'gone'>), signer: check.fingerprint }
  }

  private async table(type: TypeName): Promise<ReadonlyMap<string, Entry>> {
    return this.latest.get(type) ?? ((await this.replica.read({ flavour: 'ttl', type })).table as ReadonlyMap<string, Entry>)
  }

  private check<T extends OfferRecord | TakenRecord | AnswerRecord | 'gone'>(type: TypeName, key: string, entry: Entry, parse: () => T): T | undefined {
    const known = this.parsed.get(entry)
    if (known?.key === key) return (known.record ?? undefined) as T | undefined
    try {
      const record = parse()
      this.parsed.set(entry, { key, record })
      return record
    } catch (e) {
      if (!isMallaError(e, 'BAD_INPUT')) throw e
      this.parsed.set(entry, { key, record: null })
      this.countBad(type, key, entry)
      return undefined
    }
  }

  private countBad(type: TypeName, key: string, entry: Entry): void {
    const id = `${type}/${key}/${entry.author}/${entry.clock ?? ''}`
    if (this.badSeen.has(id)) return
    // Bounded: a flood of garbage must not grow a page's memory without end.
    if (this.badSeen.size > 10_000) this.badSeen.clear()
    this.badSeen.add(id)
    if (type === this.types.offers) this.badOffers++
    else this.badAnswers++
  }
}

/** A signed withdrawal: `{"v": 1, "gone": true, "pgp": …}`. */
function isGone(data: unknown): boolean {
  return data !== null && typeof data === 'object' && (data as { gone?: unknown }).gone === true
}
