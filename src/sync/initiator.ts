import type { Entry } from '../core/types.js'
import type { Replica } from '../replica/replica.js'
import type { TableRef } from '../storage/table-store.js'
import type { ReceivedReply, SyncLink } from './links/link.js'
import { bucketCount, entryChars, MAX_RECONCILE_KEYS, planExchange, SYNC_PAGE_CHARS, tableDigests } from './reconcile.js'

/**
 * The asking half of the sync protocol, over any link: what a node sends, and how it merges the replies.
 * Replies are merged with the link as their source, so what they bring is not sent back over it.
 */

/** What one exchange changed here, or why it merged nothing. */
export interface Exchanged {
  readonly keys: readonly string[]
  readonly skipped?: string
}

/** Passes (digests, then pages of entries) one reconciliation may take before it stops until the next round. */
const MAX_PASSES = 64

/**
 * LibreMesh's sync: our table (or the part of it given, a valid partial sync) goes over, the far end's whole
 * merged table comes back and is merged here. What every LibreMesh router answers.
 */
export async function sendWhole(replica: Replica, link: SyncLink, ref: TableRef, entries?: ReadonlyMap<string, object>): Promise<Exchanged> {
  const reply = await link.request({ t: 'table', ref, entries: entries ?? (await replica.read(ref)).table })
  return mergeReply(replica, link, ref, reply)
}

/**
 * Pushes changed entries to a malla far end, which merges them and answers only where its copy is better;
 * those corrections are merged here. A change costs its own size on the link, whatever the table's size.
 * Many entries go in pages (SYNC_PAGE_CHARS each), one after the other, so no push needs a body limit larger
 * than the default.
 */
export async function pushTo(replica: Replica, link: SyncLink, ref: TableRef, entries: ReadonlyMap<string, object>): Promise<Exchanged> {
  const keys: string[] = []
  let skipped: string | undefined
  for (const page of pages(entries)) {
    const outcome = await mergeReply(replica, link, ref, await link.request({ t: 'push', ref, entries: page }))
    keys.push(...outcome.keys)
    skipped ??= outcome.skipped
  }
  return skipped === undefined ? { keys } : { keys, skipped }
}

/**
 * Reconciles one table with a malla far end (docs/protocol.md §9.3): digests first, then only the entries that
 * differ, both ways, in pages: no request carries more than SYNC_PAGE_CHARS of entries and no answer more than
 * the answerer's own page, so two nodes converge whatever the table's size and their body limits. Tables in
 * sync cost one small request and an empty answer. `gives` limits what this side sends (a leaf: its own
 * entries). Rejects with NotMallaError when the far end speaks LibreMesh only.
 */
export async function reconcileWith(replica: Replica, link: SyncLink, ref: TableRef, gives?: (entry: object) => boolean): Promise<Exchanged> {
  const changed = new Set<string>()
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const table = (await replica.read(ref)).table as ReadonlyMap<string, Entry>
    const buckets = bucketCount(table.size)
    const summary = await link.request({ t: 'summary', ref, buckets, digests: tableDigests(ref.flavour, table, buckets) })
    if (summary.t !== 'differing') break
    const { give, want } = planExchange(ref.flavour, table, buckets, summary.answer)
    // A leaf gives only what it wrote: never entries the routers may have bleached (SyncPolicy).
    if (gives) for (const [key, entry] of give) if (!gives(entry)) give.delete(key)
    if (give.size === 0 && want.length === 0) break
    // Page by page: what we give, and what we want, each page within the size bound; wanted keys the
    // answer left out (its page was full) are asked for again in the next page.
    const giving = [...give]
    let wanting = want
    let progress = false
    while (giving.length > 0 || wanting.length > 0) {
      const page = new Map<string, object>()
      let chars = 0
      while (giving.length > 0 && (page.size === 0 || chars + entryChars(...(giving[0] as [string, object])) <= SYNC_PAGE_CHARS)) {
        const [key, entry] = giving.shift() as [string, object]
        page.set(key, entry)
        chars += entryChars(key, entry)
      }
      const asked: string[] = []
      while (wanting.length > 0 && asked.length < MAX_RECONCILE_KEYS && (asked.length === 0 || chars + (wanting[0] as string).length + 3 <= SYNC_PAGE_CHARS)) {
        const key = wanting.shift() as string
        asked.push(key)
        chars += key.length + 3
      }
      const reply = await link.request({ t: 'exchange', ref, entries: page, want: asked })
      const entries = reply.t === 'entries' ? reply.entries : new Map<string, object>()
      if (entries.size > 0) for (const k of (await replica.mergeInto(ref, entries, link.id)).changed) changed.add(k)
      progress ||= page.size > 0 || entries.size > 0
      if (reply.t === 'entries' && reply.more) {
        if (entries.size === 0) break // a full page with nothing in it: not progress, try again next round
        wanting = [...asked.filter((k) => !entries.has(k)), ...wanting]
      }
    }
    // A summary answer lists at most a page of buckets: another pass takes the rest.
    if (!progress || (summary.answer as { partial?: unknown })?.partial !== true) break
  }
  return { keys: [...changed] }
}

async function mergeReply(replica: Replica, link: SyncLink, ref: TableRef, reply: ReceivedReply): Promise<Exchanged> {
  if (reply.t === 'empty') return { keys: [], skipped: reply.reason }
  if (reply.t !== 'table' && reply.t !== 'corrections') return { keys: [], skipped: `unexpected ${reply.t} reply` }
  // Most push answers are `{}` (nothing to correct): no need to queue behind this table's writes for that.
  if (reply.entries.size === 0) return { keys: [] }
  return { keys: (await replica.mergeInto(ref, reply.entries, link.id)).changed }
}

/** Entries cut into maps of at most SYNC_PAGE_CHARS of JSON each (an entry larger than that alone). */
function* pages(entries: ReadonlyMap<string, object>): Generator<Map<string, object>> {
  let page = new Map<string, object>()
  let chars = 0
  for (const [key, entry] of entries) {
    const size = entryChars(key, entry)
    if (page.size > 0 && chars + size > SYNC_PAGE_CHARS) {
      yield page
      page = new Map()
      chars = 0
    }
    page.set(key, entry)
    chars += size
  }
  if (page.size > 0) yield page
}
