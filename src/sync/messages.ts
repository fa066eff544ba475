import { FLAVOURS } from '../core/flavours.js'
import { parseTypeName, serializeTable } from '../core/schema.js'
import type { TableRef } from '../storage/table-store.js'
import { parseReconcileRequest, type SummaryAnswer } from './reconcile.js'

/**
 * The sync protocol as messages, whatever carries them (docs/protocol.md §9, §14). A request names a table and
 * carries entries or digests; the responder (responder.ts) answers each with exactly one reply. Links map these
 * onto their wire: the HTTP link onto LibreMesh's endpoint and malla's `/malla/v1/reconcile` (bodies unchanged,
 * so LibreMesh routers see what they always saw), a data channel onto framed JSON.
 */
export const SYNC_VERSION = 1

export type SyncRequest =
  /** LibreMesh's sync: our whole table (or part of it); answered with the receiver's whole merged table. */
  | { readonly t: 'table'; readonly ref: TableRef; readonly entries: ReadonlyMap<string, object> }
  /** A change: some entries; answered with the receiver's corrections (its copy where it differs after the merge). */
  | { readonly t: 'push'; readonly ref: TableRef; readonly entries: ReadonlyMap<string, object> }
  /** Reconciliation, round 1: one digest per bucket; answered with the item lists of the buckets that differ. */
  | { readonly t: 'summary'; readonly ref: TableRef; readonly buckets: number; readonly digests: string }
  /** Reconciliation, round 2: entries the receiver lacks, and keys wanted from it; answered with its copies of those. */
  | { readonly t: 'exchange'; readonly ref: TableRef; readonly entries: ReadonlyMap<string, object>; readonly want: readonly string[] }

/**
 * A reply. Entries travel as the JSON text of a table (`{key: entry, ...}`): a reply is built to be sent, and
 * a whole table's text is often at hand already (the replica keeps the text it saved).
 */
export type SyncReply =
  | { readonly t: 'table'; readonly entries: string }
  | { readonly t: 'corrections'; readonly entries: string }
  | { readonly t: 'differing'; readonly answer: SummaryAnswer }
  | { readonly t: 'entries'; readonly entries: string; readonly more: boolean }

/** A table or push request from a received table (LibreMesh's endpoint body), validated with its flavour's schema. */
export function tableRequest(t: 'table' | 'push', ref: TableRef, value: unknown, what: string): Extract<SyncRequest, { t: 'table' | 'push' }> {
  return { t, ref, entries: FLAVOURS[ref.flavour].parse(value, what) }
}

/** A reconcile request from `/malla/v1/reconcile`'s body (docs/protocol.md §9.3), validated. */
export function reconcileRequest(value: unknown): SyncRequest {
  const parsed = parseReconcileRequest(value)
  const ref: TableRef = { flavour: parsed.request.flavour, type: parseTypeName(parsed.request.type) }
  if (parsed.round === 1) return { t: 'summary', ref, buckets: parsed.request.buckets, digests: parsed.request.digests }
  return { t: 'exchange', ref, entries: FLAVOURS[ref.flavour].parse(parsed.request.entries, 'entries'), want: parsed.request.want }
}

/** A reconcile request as `/malla/v1/reconcile` takes it. */
export function reconcileBody(request: Extract<SyncRequest, { t: 'summary' | 'exchange' }>): string {
  const head = `{"v":${SYNC_VERSION},"flavour":${JSON.stringify(request.ref.flavour)},"type":${JSON.stringify(request.ref.type)}`
  if (request.t === 'summary') return `${head},"buckets":${request.buckets},"digests":"${request.digests}"}`
  return `${head},"entries":${serializeTable(request.entries)},"want":${JSON.stringify(request.want)}}`
}

/** A reply as the HTTP wire carries it: LibreMesh's table text, or `/malla/v1/reconcile`'s answers. */
export function replyBody(reply: SyncReply): string {
  switch (reply.t) {
    case 'table':
    case 'corrections':
      return reply.entries
    case 'differing':
      return JSON.stringify(reply.answer)
    case 'entries':
      return `{"v":${SYNC_VERSION},"entries":${reply.entries}${reply.more ? ',"more":true' : ''}}`
  }
}

/** How many entries and wanted keys a request carries: the work it asks for, to charge to its sender. */
export function requestSize(request: SyncRequest): number {
  if (request.t === 'summary') return request.buckets
  if (request.t === 'exchange') return request.entries.size + request.want.length
  return request.entries.size
}
