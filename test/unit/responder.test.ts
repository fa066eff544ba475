import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Entry, TypeName } from '../../src/core/types.js'
import { Replica } from '../../src/replica/replica.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import type { TableRef } from '../../src/storage/table-store.js'
import { reconcileRequest, replyBody, tableRequest } from '../../src/sync/messages.js'
import { answer } from '../../src/sync/responder.js'
import { bucketCount, tableDigests } from '../../src/sync/reconcile.js'

const REF: TableRef = { flavour: 'ttl', type: 'hosts' as TypeName }
const entry = (data: string, clock: string, author = 'far'): Entry => ({ data, author, bleachTTL: 30, clock })

async function replicaWith(values: Record<string, string>): Promise<Replica> {
  const replica = new Replica({ store: new MemoryStore(), author: 'near', now: () => 1_700_000_000_000 })
  await replica.insert(REF.type, Object.entries(values))
  return replica
}

describe('responder', () => {
  it('answers a whole table with the merged table, and records the link it came from', async () => {
    const replica = await replicaWith({ a: 'ours' })
    const sources: Array<[string, string]> = []
    replica.on('change', (e) => sources.push(...(e.sources ?? [])))
    const { reply, changed } = await answer(replica, tableRequest('table', REF, { b: entry('theirs', '5') }, 'body'), { source: 'link-x' })
    assert.equal(reply.t, 'table')
    assert.deepEqual(Object.keys(JSON.parse(replyBody(reply)) as object).sort(), ['a', 'b'])
    assert.deepEqual(changed, ['b'])
    assert.deepEqual(sources, [['b', 'link-x']])
  })

  it('answers a push with corrections only: nothing when the push won, our copy where ours won', async () => {
    const replica = await replicaWith({ a: 'ours' })
    const won = await answer(replica, tableRequest('push', REF, { b: entry('new', '5') }, 'body'))
    assert.equal(replyBody(won.reply), '{}')
    const lost = await answer(replica, tableRequest('push', REF, { a: entry('stale', '1') }, 'body'))
    assert.deepEqual((JSON.parse(replyBody(lost.reply)) as Record<string, Entry>).a?.data, 'ours')
    assert.deepEqual(lost.changed, [])
  })

  it('answers both reconcile rounds, and charges the work before doing it', async () => {
    const replica = await replicaWith({ a: '1', b: '2', c: '3' })
    const charged: number[] = []
    const buckets = bucketCount(0)
    const summary = await answer(replica, reconcileRequest({ v: 1, flavour: 'ttl', type: 'hosts', buckets, digests: tableDigests('ttl', new Map(), buckets) }), { charge: (n) => charged.push(n) })
    assert.equal(summary.reply.t, 'differing')
    const listed = Object.values((JSON.parse(replyBody(summary.reply)) as { buckets: Record<string, Array<[string, string]>> }).buckets).flat().map(([k]) => k)
    assert.deepEqual(listed.sort(), ['a', 'b', 'c'])
    assert.deepEqual(charged, [buckets, 3])
    const exchange = await answer(replica, reconcileRequest({ v: 1, flavour: 'ttl', type: 'hosts', entries: { d: entry('4', '9') }, want: ['a', 'zz'] }))
    const body = JSON.parse(replyBody(exchange.reply)) as { entries: Record<string, Entry>; more?: boolean }
    assert.deepEqual(Object.keys(body.entries), ['a'])
    assert.equal(body.more, undefined)
    assert.deepEqual(exchange.changed, ['d'])
  })

  it('refuses a request over its sender\'s budget before merging anything', async () => {
    const replica = await replicaWith({})
    await assert.rejects(
      answer(replica, tableRequest('push', REF, { b: entry('x', '5') }, 'body'), { charge: () => { throw new Error('over budget') } }),
      /over budget/,
    )
    assert.equal((await replica.get(REF.type)).table.size, 0)
  })
})
