import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Table } from '../../src/core/types.js'
import { Replica } from '../../src/replica/replica.js'
import { answerData, offerData, signalTypes } from '../../src/signaling/signal-records.js'
import { SignalTables } from '../../src/signaling/signal-tables.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { lockGate } from '../helpers/lock-gate.js'

const SESSION = ['Zx9T', 'q3kXh7gL0cYb1vT6Nw8pR2sF', 'TyoZwH1l5QOIqrvM3e8WVWZ3iIoqK-9OcT1UXmFwcXE', 'actpass', ['1 1 udp 1677729535 10.99.0.2 54321 srflx'], 262144]
const EXP = Date.now() + 60_000
const { offers: OFFERS_TYPE, answers: ANSWERS_TYPE } = signalTypes('room')

describe('SignalTables', () => {
  it('reads a merged answer as soon as the replica announces it, before the write has its lock', async () => {
    const store = new MemoryStore()
    const gate = lockGate(store)
    const replica = new Replica({ store, author: 'offerer01' })
    const tables = new SignalTables(replica, 'room')
    await tables.write('offers', [['offerer01.0', offerData({ room: 'room', session: SESSION as never, expiresAt: EXP })]])
    // The replica has read the answers table once (a router link's first exchange does), so it knows it.
    await replica.read({ flavour: 'ttl', type: ANSWERS_TYPE })
    gate.hold()
    const merging = replica.merge(ANSWERS_TYPE, new Map([['offerer01.0>answerer1', { data: answerData({ session: SESSION as never, expiresAt: EXP }), author: 'answerer1', bleachTTL: 2 }]]) as Table)
    await new Promise((resolve) => setTimeout(resolve, 10))
    const view = await tables.read()
    assert.deepEqual(view.answers.map((a) => [a.key, a.record.to, a.record.peer]), [['offerer01.0>answerer1', 'offerer01', 'answerer1']])
    gate.open()
    await merging
    tables.close()
  })

  it('skips malformed entries and counts each once, however often the tables are read', async () => {
    const replica = new Replica({ store: new MemoryStore(), author: 'reader001' })
    const tables = new SignalTables(replica, 'room')
    await replica.merge(
      OFFERS_TYPE,
      new Map([
        ['badpeer01.0', { data: { v: 1, room: 'room', s: ['not', 'a', 'session'], exp: EXP }, author: 'badpeer01', bleachTTL: 4 }],
        ['goodpeer1.0', { data: offerData({ room: 'room', session: SESSION as never, expiresAt: EXP }), author: 'goodpeer1', bleachTTL: 4 }],
        // A valid offer written by someone else than the peer its key names.
        ['goodpeer1.1', { data: offerData({ room: 'room', session: SESSION as never, expiresAt: EXP }), author: 'intruder1', bleachTTL: 4 }],
        // A valid offer of another room, written into this room's table.
        ['otherpeer.0', { data: offerData({ room: 'other', session: SESSION as never, expiresAt: EXP }), author: 'otherpeer', bleachTTL: 4 }],
      ]) as Table,
    )
    for (let i = 0; i < 3; i++) {
      const view = await tables.read()
      assert.deepEqual(view.offers.map((o) => o.key), ['goodpeer1.0'])
    }
    assert.deepEqual(tables.ignored(), { offers: 3, answers: 0 })
    tables.close()
  })

  it("keeps each room's records in that room's own types, so one room's join never reads another's", async () => {
    const replica = new Replica({ store: new MemoryStore(), author: 'writer001' })
    const plaza = new SignalTables(replica, 'plaza')
    const fiesta = new SignalTables(replica, 'fiesta.2026')
    assert.deepEqual(plaza.types, { offers: 'room-plaza-_offers', answers: 'room-plaza-_answers' })
    assert.deepEqual(fiesta.types, { offers: 'room-fiesta_2e2026-_offers', answers: 'room-fiesta_2e2026-_answers' })
    await plaza.write('offers', [['writer001.0', offerData({ room: 'plaza', session: SESSION as never, expiresAt: EXP })]])
    assert.deepEqual((await plaza.read()).offers.map((o) => o.key), ['writer001.0'])
    assert.deepEqual((await fiesta.read()).offers, [])
    assert.deepEqual((await replica.list()).map((r) => r.type), ['room-plaza-_offers'])
    plaza.close()
    fiesta.close()
  })
})
