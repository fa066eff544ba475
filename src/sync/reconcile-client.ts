import { MallaError } from '../core/errors.js'
import { serializeTable } from '../core/schema.js'
import type { Entry, Json } from '../core/types.js'
import type { Replica } from '../replica/replica.js'
import type { TableRef } from '../storage/table-store.js'
import type { HttpPoster } from '../transport/http-poster.js'
import { MALLA_HEADER, MALLA_NAME_HEADER } from './links/http-wire.js'
import { DEFAULT_MAX_REPLY_BYTES, DEFAULT_TIMEOUT_MS, type ExchangeOptions, type SyncOutcome } from './full-table-sync.js'
import { decodeName } from './neighbour-name.js'
import { bucketCount, MAX_RECONCILE_KEYS, parseReconcileEntries, planExchange, SYNC_PAGE_CHARS, tableDigests } from './reconcile.js'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Passes (digests, then pages of entries) one reconciliation may take before it stops until the next round. */
const MAX_PASSES = 64

interface JsonReply {
  readonly value: unknown
  readonly sent: number
  readonly received: number
  readonly name?: string
}

/** The far end does not speak malla (its answer lacks the capability header): talk LibreMesh to it. */
export class NotMallaError extends MallaError {
  constructor(url: string) {
    super('PEER', `${url} is not a malla endpoint (no ${MALLA_HEADER} header)`)
  }
}

async function postJson(poster: HttpPoster, url: string, body: string, options: ExchangeOptions): Promise<JsonReply> {
  const bytes = encoder.encode(body)
  const reply = await poster.post({
    url,
    body: bytes,
    headers: { 'content-type': 'application/json' },
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxReplyBytes: options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
  })
  // A LibreMesh router answers a path it does not know with an error page or an empty 200, never with this.
  if (reply.headers.get(MALLA_HEADER) === undefined) throw new NotMallaError(url)
  const text = decoder.decode(reply.body)
  if (reply.status !== 200) throw new MallaError('PEER', `POST ${url} answered HTTP ${reply.status}: ${text.slice(0, 300).trim()}`)
  const name = decodeName(reply.headers.get(MALLA_NAME_HEADER))
  try {
    return { value: JSON.parse(text), sent: bytes.byteLength, received: reply.body.byteLength, ...(name ? { name } : {}) }
  } catch {
    throw new MallaError('PEER', `POST ${url} answered something that is not JSON`)
  }
}

/**
 * Reconciles one table with a malla neighbour (docs/protocol.md §9.3): digests first, then only the entries
 * that differ, both ways, in pages: no request carries more than SYNC_PAGE_CHARS of entries and no answer
 * more than the answerer's own page, so two nodes converge whatever the table's size and their body limits
 * (a new neighbour of a 10,000-entry table gets it page by page). Tables in sync cost one small request and
 * an empty answer. Also the first contact with a neighbour: NotMallaError says it speaks LibreMesh only.
 */
export async function reconcileTable(replica: Replica, ref: TableRef, base: string, options: ExchangeOptions): Promise<SyncOutcome> {
  const url = `${base.replace(/\/+$/, '')}/malla/v1/reconcile`
  let sent = 0
  let received = 0
  let name: string | undefined
  const changed = new Set<string>()
  const post = async (body: string): Promise<unknown> => {
    const reply = await postJson(options.poster, url, body, options)
    sent += reply.sent
    received += reply.received
    name ??= reply.name
    return reply.value
  }
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const table = (await replica.read(ref)).table as ReadonlyMap<string, Entry>
    const buckets = bucketCount(table.size)
    const summary = await post(JSON.stringify({ v: 1, flavour: ref.flavour, type: ref.type, buckets, digests: tableDigests(ref.flavour, table, buckets) }))
    const { give, want } = planExchange(ref.flavour, table, buckets, summary)
    if (give.size === 0 && want.length === 0) break
    // Page by page: what we give, and what we want, each page within the size bound; wanted keys the
    // answer left out (its page was full) are asked for again in the next page.
    const giving = [...give]
    let wanting = want
    let progress = false
    while (giving.length > 0 || wanting.length > 0) {
      const page = new Map<string, object>()
      let chars = 0
      while (giving.length > 0 && (page.size === 0 || chars + entryChars(giving[0] as [string, object]) <= SYNC_PAGE_CHARS)) {
        const [key, entry] = giving.shift() as [string, object]
        page.set(key, entry)
        chars += entryChars([key, entry])
      }
      const asked: string[] = []
      while (wanting.length > 0 && asked.length < MAX_RECONCILE_KEYS && (asked.length === 0 || chars + (wanting[0] as string).length + 3 <= SYNC_PAGE_CHARS)) {
        const key = wanting.shift() as string
        asked.push(key)
        chars += key.length + 3
      }
      const answer = (await post(`{"v":1,"flavour":${JSON.stringify(ref.flavour)},"type":${JSON.stringify(ref.type)},"entries":${serializeTable(page)},"want":${JSON.stringify(asked)}}`)) as { entries?: Json; more?: unknown }
      const entries = parseReconcileEntries(ref.flavour, answer?.entries ?? {}, `reconcile answer from ${url}`)
      if (entries.size > 0) {
        const merged = ref.flavour === 'ttl' ? await replica.merge(ref.type, entries as Map<string, Entry>) : await replica.mergeMultiWriter(ref.type, entries as never)
        for (const k of merged.changed) changed.add(k)
      }
      progress ||= page.size > 0 || entries.size > 0
      if (answer?.more === true) {
        if (entries.size === 0) break // a full page with nothing in it: not progress, try again next round
        wanting = [...asked.filter((k) => !entries.has(k)), ...wanting]
      }
    }
    // A summary answer lists at most a page of buckets: another pass takes the rest.
    if (!progress || (summary as { partial?: unknown })?.partial !== true) break
  }
  return { url, keys: [...changed], bytesSent: sent, bytesReceived: received, malla: true, ...(name ? { name } : {}) }
}

/** About how many characters an entry takes in a body: its key, its JSON, and the punctuation between. */
function entryChars([key, entry]: [string, object]): number {
  return key.length + JSON.stringify(entry).length + 4
}
