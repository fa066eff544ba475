import { MallaError } from '../core/errors.js'
import { serializeTable } from '../core/schema.js'
import type { Entry, Json } from '../core/types.js'
import type { Replica } from '../replica/replica.js'
import type { TableRef } from '../storage/table-store.js'
import type { HttpPoster } from '../transport/http-poster.js'
import { DEFAULT_MAX_REPLY_BYTES, DEFAULT_TIMEOUT_MS, type ExchangeOptions, type SyncOutcome } from './full-table-sync.js'
import { bucketCount, parseReconcileEntries, planExchange, tableDigests } from './reconcile.js'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

async function postJson(poster: HttpPoster, url: string, body: string, options: ExchangeOptions): Promise<{ value: unknown; sent: number; received: number }> {
  const bytes = encoder.encode(body)
  const reply = await poster.post({
    url,
    body: bytes,
    headers: { 'content-type': 'application/json' },
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxReplyBytes: options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
  })
  const text = decoder.decode(reply.body)
  if (reply.status !== 200) throw new MallaError('PEER', `POST ${url} answered HTTP ${reply.status}: ${text.slice(0, 300).trim()}`)
  try {
    return { value: JSON.parse(text), sent: bytes.byteLength, received: reply.body.byteLength }
  } catch {
    throw new MallaError('PEER', `POST ${url} answered something that is not JSON`)
  }
}

/**
 * Reconciles one table with a malla neighbour (docs/protocol.md, "Reconciliation"): digests first, then
 * only the entries that differ, both ways. Tables in sync cost one small request and an empty answer.
 */
export async function reconcileTable(replica: Replica, ref: TableRef, base: string, options: ExchangeOptions): Promise<SyncOutcome> {
  const url = `${base.replace(/\/+$/, '')}/malla/v1/reconcile`
  const local = await replica.read(ref)
  const table = local.table as ReadonlyMap<string, Entry>
  const buckets = bucketCount(table.size)
  const r1 = await postJson(options.poster, url, JSON.stringify({ v: 1, flavour: ref.flavour, type: ref.type, buckets, digests: tableDigests(ref.flavour, table, buckets) }), options)
  let sent = r1.sent
  let received = r1.received
  const { give, want } = planExchange(ref.flavour, table, buckets, r1.value)
  if (give.size === 0 && want.length === 0) return { url, keys: [], bytesSent: sent, bytesReceived: received, malla: true }
  const body = `{"v":1,"flavour":${JSON.stringify(ref.flavour)},"type":${JSON.stringify(ref.type)},"entries":${serializeTable(give)},"want":${JSON.stringify(want)}}`
  const r2 = await postJson(options.poster, url, body, options)
  sent += r2.sent
  received += r2.received
  const entries = parseReconcileEntries(ref.flavour, (r2.value as { entries?: Json })?.entries ?? {}, `reconcile answer from ${url}`)
  const merged =
    ref.flavour === 'ttl'
      ? await replica.merge(ref.type, entries as Map<string, Entry>)
      : await replica.mergeMultiWriter(ref.type, entries as never)
  return { url, keys: merged.changed, bytesSent: sent, bytesReceived: received, malla: true }
}
