import { writeOwn } from '../replica/own-writes.js'
import { isMallaError } from '../core/errors.js'
import type { Entry, Json, TypeName } from '../core/types.js'
import type { Unsubscribe } from 'nanoevents'
import type { ChangeEvent, Replica } from '../replica/replica.js'
import { type AnswerRecord, type OfferRecord, parseAnswerEntry, parseOfferEntry, type SignalTypes, signalTypes, type TakenRecord } from './signal-records.js'

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
  private readonly parsed = new WeakMap<object, { readonly key: string; readonly record: OfferRecord | TakenRecord | AnswerRecord | null }>()
  private readonly offApplied: Unsubscribe
  /** The room's two types. */
  readonly types: SignalTypes

  constructor(
    private readonly replica: Replica,
    private readonly room: string,
  ) {
    this.types = signalTypes(room)
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

  /** Malformed entries skipped so far, per table. */
  ignored(): { readonly offers: number; readonly answers: number } {
    return { offers: this.badOffers, answers: this.badAnswers }
  }

  /** Writes own records, each rewrite one TTL higher than the last copy (see `writeOwn`). */
  async write(table: keyof SignalTypes, values: ReadonlyArray<readonly [string, Json]>, baseTtl = SIGNAL_TTL): Promise<void> {
    await writeOwn(this.replica, this.types[table], values, baseTtl)
  }

  /** Withdraws own records: `data: null`, which spreads like any write (and, as a rewrite, climbs in TTL). */
  async withdraw(table: keyof SignalTypes, keys: readonly string[]): Promise<void> {
    const entries = (await this.replica.read({ flavour: 'ttl', type: this.types[table] })).table as ReadonlyMap<string, Entry>
    const mine = keys.filter((k) => {
      const e = entries.get(k)
      return e !== undefined && e.author === this.replica.author && e.data !== null && e.data !== undefined
    })
    if (mine.length > 0) await this.write(table, mine.map((k) => [k, null] as const))
  }

  async read(): Promise<TablesView> {
    const { offers: offersType, answers: answersType } = this.types
    const [offerTable, answerTable] = await Promise.all([this.table(offersType), this.table(answersType)])
    const offers: OfferView[] = []
    for (const [key, entry] of offerTable) {
      if (entry.data === null || entry.data === undefined) {
        offers.push({ key, record: 'withdrawn' })
        continue
      }
      const record = this.check(offersType, key, entry, () => parseOfferEntry(key, entry.data))
      if (!record) continue
      // An offer of another room written into this room's table: somebody's mistake or mischief.
      if (record.kind === 'offer' && record.room !== this.room) {
        this.countBad(offersType, key, entry)
        continue
      }
      // Taken marks name no room: only the answerers of that very offer look at them.
      if (record.peer === entry.author) offers.push({ key, record })
      else this.countBad(offersType, key, entry)
    }
    const answers: Array<{ key: string; record: AnswerRecord }> = []
    for (const [key, entry] of answerTable) {
      if (entry.data === null || entry.data === undefined) continue
      const record = this.check(answersType, key, entry, () => parseAnswerEntry(key, entry.data))
      // An answer names no room either: it is for the offer in its key, which only its offerer reads.
      if (!record) continue
      if (record.peer === entry.author) answers.push({ key, record })
      else this.countBad(answersType, key, entry)
    }
    return { offers, answers }
  }

  private async table(type: TypeName): Promise<ReadonlyMap<string, Entry>> {
    return this.latest.get(type) ?? ((await this.replica.read({ flavour: 'ttl', type })).table as ReadonlyMap<string, Entry>)
  }

  private check<T extends OfferRecord | TakenRecord | AnswerRecord>(type: TypeName, key: string, entry: Entry, parse: () => T): T | undefined {
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
