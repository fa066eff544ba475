import type { Entry } from '../core/types.js'
import type { Replica } from '../replica/replica.js'
import { requestSize, type SyncReply, type SyncRequest } from './messages.js'
import { pushCorrections } from './push-corrections.js'
import { answerSummary, pick } from './reconcile.js'
import { serializeTable } from '../core/schema.js'

export interface AnswerContext {
  /** The link the request came from: what it changes here is not sent back there (ChangeEvent.sources). */
  readonly source?: string
  /**
   * Charged with the work a request asks for before it is done (entries merged, keys looked up, table size for
   * a summary); throws (BUSY) to refuse it. Links that serve strangers pass their sender's budget.
   */
  readonly charge?: (units: number) => void
  /** Charged for each signature verified on the way in (`Admission`); throws (BUSY) when the sender cannot afford more. */
  readonly chargeChecks?: (checks: number) => void
}

/** A reply, and the keys the request changed here. */
export interface Answered {
  readonly reply: SyncReply
  readonly changed: readonly string[]
}

/**
 * The answering half of the sync protocol, for every link: one request in, its one reply out. It merges what
 * the request brings into the replica and reads what the reply needs from it; it knows nothing of how the
 * request arrived or how the reply leaves.
 */
export async function answer(replica: Replica, request: SyncRequest, ctx: AnswerContext = {}): Promise<Answered> {
  ctx.charge?.(requestSize(request))
  switch (request.t) {
    case 'table': {
      const merged = await replica.mergeInto(request.ref, request.entries, ctx.source, ctx.chargeChecks)
      return { reply: { t: 'table', entries: merged.text }, changed: merged.changed }
    }
    case 'push': {
      // Our copy of each key sent wherever it is not the copy sent: usually nothing.
      const merged = await replica.mergeInto(request.ref, request.entries, ctx.source, ctx.chargeChecks)
      return { reply: { t: 'corrections', entries: serializeTable(pushCorrections(request.entries, merged.table)) }, changed: merged.changed }
    }
    case 'summary': {
      const table = (await replica.read(request.ref)).table as ReadonlyMap<string, Entry>
      ctx.charge?.(table.size)
      return { changed: [], reply: { t: 'differing', answer: answerSummary({ v: 1, flavour: request.ref.flavour, type: request.ref.type, buckets: request.buckets, digests: request.digests }, table) } }
    }
    case 'exchange': {
      const merged = request.entries.size > 0 ? await replica.mergeInto(request.ref, request.entries, ctx.source, ctx.chargeChecks) : await replica.read(request.ref)
      const picked = pick(merged.table as ReadonlyMap<string, Entry>, request.want)
      return { reply: { t: 'entries', entries: serializeTable(picked.entries), more: picked.more }, changed: merged.changed }
    }
  }
}
