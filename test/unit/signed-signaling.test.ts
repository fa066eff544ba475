import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { Entry, Json, Table } from '../../src/core/types.js'
import { createIdentity, type Identity } from '../../src/identity/identity.js'
import { Replica } from '../../src/replica/replica.js'
import { answerData, offerData, signalTypes, takenData } from '../../src/signaling/signal-records.js'
import { roomAdmission } from '../../src/signaling/room-admission.js'
import { SignalTables } from '../../src/signaling/signal-tables.js'
import { isKeyBound } from '../../src/signaling/signal-records.js'
import { checkRecord, recordSigner, type RecordSigner } from '../../src/signaling/signed-records.js'
import { MemoryStore } from '../../src/storage/memory-store.js'

const SESSION = ['Zx9T', 'q3kXh7gL0cYb1vT6Nw8pR2sF', 'TyoZwH1l5QOIqrvM3e8WVWZ3iIoqK-9OcT1UXmFwcXE', 'actpass', ['1 1 udp 1677729535 10.99.0.2 54321 srflx'], 262144]
const OTHER_FINGERPRINT = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
const EXP = Date.now() + 60_000
const { offers: OFFERS, answers: ANSWERS } = signalTypes('room')
const offer = (session: unknown = SESSION) => offerData({ room: 'room', session: session as never, expiresAt: EXP }) as { [k: string]: Json }

/** Entries as they would arrive from the mesh: whatever each writer put in them. */
async function merged(replica: Replica, type: string, entries: ReadonlyArray<readonly [string, Json, string]>, ttl = 9): Promise<void> {
  await replica.merge(type as never, new Map(entries.map(([k, data, author]) => [k, { data, author, bleachTTL: ttl } as Entry])) as Table)
}

describe('signed signaling records', () => {
  let ana: Identity
  let mallory: Identity
  let a: RecordSigner
  before(async () => {
    ;[ana, mallory] = await Promise.all([createIdentity('Ana'), createIdentity('Mallory')])
    a = recordSigner(ana)
  })

  it('a session id is bound to its key and differs per session', () => {
    assert.ok(isKeyBound(a.peerId), a.peerId)
    assert.match(a.peerId, /^k[a-z2-7]{25}$/)
    assert.notEqual(recordSigner(ana).peerId, a.peerId)
    assert.equal(isKeyBound('abcdefgh12345678'), false)
  })

  it('a signed record checks, and names its signer; any change to type, key or data does not', () => {
    const key = `${a.peerId}.0`
    const signed = a.sign(OFFERS, key, offer())
    assert.deepEqual(checkRecord(OFFERS, key, a.peerId, signed), { signed: true, fingerprint: ana.fingerprint, peer: a.peerId })
    assert.throws(() => checkRecord(ANSWERS, key, a.peerId, signed), /bad signature|digest/)
    assert.throws(() => checkRecord(OFFERS, `${a.peerId}.1`, a.peerId, signed), /bad signature|digest/)
    // The DTLS fingerprint is in the session: a router that swaps it breaks the signature.
    const swapped = { ...(signed as object), s: [...SESSION.slice(0, 2), OTHER_FINGERPRINT, ...SESSION.slice(3)] }
    assert.throws(() => checkRecord(OFFERS, key, a.peerId, swapped), /bad signature|digest/)
  })

  it('nobody else can write as a key-bound peer: unsigned, or signed by another key, it is refused', () => {
    const key = `${a.peerId}.0`
    assert.throws(() => checkRecord(OFFERS, key, a.peerId, offer()), /not signed/)
    // Mallory signs with her own key and Ana's proof of id: her key does not make Ana's id.
    const m = recordSigner(mallory)
    const forged = m.sign(OFFERS, key, offer()) as { pgp: { k: string; n: string; sig: string } }
    assert.throws(() => checkRecord(OFFERS, key, a.peerId, forged), /does not make the peer id/)
    const withAnasProof = { ...forged, pgp: { ...(a.sign(OFFERS, key, offer()) as { pgp: { k: string; n: string } }).pgp, sig: forged.pgp.sig } }
    assert.throws(() => checkRecord(OFFERS, key, a.peerId, withAnasProof), /signed by another key|bad signature|digest/)
    for (const pgp of [null, 1, 'x', { k: 'x', n: 'y', sig: 'z' }, { k: '', n: '', sig: '' }]) assert.throws(() => checkRecord(OFFERS, key, a.peerId, { ...offer(), pgp }))
  })

  it('tables: a signing peer reads only signed records, with their signer, and ignores forged marks and withdrawals', async () => {
    const b = recordSigner(mallory)
    const replica = new Replica({ store: new MemoryStore(), author: b.peerId })
    const tables = new SignalTables(replica, 'room', { signer: b, check: checkRecord })
    const anaOffer = `${a.peerId}.0`
    await merged(replica, OFFERS, [
      [anaOffer, a.sign(OFFERS, anaOffer, offer()), a.peerId],
      ['legacypeer000001.0', offer(), 'legacypeer000001'],
    ])
    let view = await tables.read()
    assert.deepEqual(view.offers.map((o) => [o.key, o.record === 'withdrawn' ? o.record : o.record.signer]), [[anaOffer, ana.fingerprint]])
    // Someone writes a null, an unsigned taken mark, and a `gone` of their own over Ana's offer.
    for (const forged of [null, takenData({ by: 'legacypeer000001', expiresAt: EXP }), { v: 1, gone: true }, b.sign(OFFERS, anaOffer, { v: 1, gone: true })] as Json[]) {
      const fresh = new Replica({ store: new MemoryStore(), author: b.peerId })
      const t = new SignalTables(fresh, 'room', { signer: b, check: checkRecord })
      await merged(fresh, OFFERS, [[anaOffer, forged, a.peerId]])
      view = await t.read()
      assert.deepEqual(view.offers, [], `${JSON.stringify(forged)} was taken as Ana's`)
      t.close()
    }
    // Ana's own signed withdrawal counts.
    const anaReplica = new Replica({ store: new MemoryStore(), author: a.peerId })
    const anaTables = new SignalTables(anaReplica, 'room', { signer: a, check: checkRecord })
    await anaTables.write('offers', [[anaOffer, offer()]])
    await anaTables.withdraw('offers', [anaOffer])
    const written = (await anaReplica.read({ flavour: 'ttl', type: OFFERS })).table.get(anaOffer) as Entry
    await merged(replica, OFFERS, [[anaOffer, written.data, a.peerId]], 10)
    view = await tables.read()
    assert.deepEqual(view.offers.map((o) => [o.key, o.record]), [[anaOffer, 'withdrawn']])
    // With acceptUnsigned, the unsigned peer's offer counts too; a key-bound peer's unsigned one still does not.
    const open = new SignalTables(replica, 'room', { signer: b, acceptUnsigned: true, check: checkRecord })
    assert.deepEqual((await open.read()).offers.map((o) => o.key).sort(), [anaOffer, 'legacypeer000001.0'].sort())
    tables.close()
    open.close()
    anaTables.close()
  })

  it('tables: answers and taken marks are the signer\'s own, signed, and read back', async () => {
    const b = recordSigner(mallory)
    const anaReplica = new Replica({ store: new MemoryStore(), author: a.peerId })
    const anaTables = new SignalTables(anaReplica, 'room', { signer: a, check: checkRecord })
    const key = `${b.peerId}.3`
    await anaTables.write('answers', [[`${key}>${a.peerId}`, answerData({ session: SESSION as never, expiresAt: EXP })]])
    await anaTables.write('offers', [[`${a.peerId}.1`, takenData({ by: b.peerId, expiresAt: EXP })]])
    const view = await anaTables.read()
    assert.deepEqual(view.answers.map((x) => [x.key, x.record.signer]), [[`${key}>${a.peerId}`, ana.fingerprint]])
    assert.deepEqual(view.offers.map((o) => (o.record === 'withdrawn' ? o.record : [o.record.kind, o.record.signer])), [['taken', ana.fingerprint]])
    // Without a signer, tables read everything as before, signed records included.
    const plain = new SignalTables(anaReplica, 'room', { check: checkRecord })
    assert.equal((await plain.read()).answers.length, 1)
    anaTables.close()
    plain.close()
  })

  it('a replica that admits by signature keeps the signed record against forged copies with higher TTLs', async () => {
    const replica = new Replica({ store: new MemoryStore(), author: 'router', admit: roomAdmission() })
    const key = `${a.peerId}.0`
    const signed = a.sign(OFFERS, key, offer())
    await merged(replica, OFFERS, [[key, signed, a.peerId], ['legacypeer000001.0', offer(), 'legacypeer000001']], 4)
    const m = recordSigner(mallory)
    for (const [data, author] of [[null, a.peerId], [takenData({ by: m.peerId, expiresAt: EXP }), a.peerId], [m.sign(OFFERS, key, offer()), a.peerId], [signed, 'mallory'], [{ ...(signed as object), exp: EXP + 1 }, a.peerId]] as Array<[Json, string]>) {
      await merged(replica, OFFERS, [[key, data, author]], 30)
    }
    const kept = (await replica.read({ flavour: 'ttl', type: OFFERS })).table
    assert.deepEqual((kept.get(key) as Entry).data, signed)
    assert.equal((kept.get(key) as Entry).bleachTTL, 4)
    // Peers without a key-bound id, and other tables, are LibreMesh's rules as ever: the higher TTL wins.
    await merged(replica, OFFERS, [['legacypeer000001.0', null, 'someone']], 30)
    assert.equal(((await replica.read({ flavour: 'ttl', type: OFFERS })).table.get('legacypeer000001.0') as Entry).data, null)
    await merged(replica, 'hosts', [[key, null, 'someone']], 30)
    assert.equal(((await replica.read({ flavour: 'ttl', type: 'hosts' as never })).table.get(key) as Entry).author, 'someone')
    // Ana's signed withdrawal of another offer, copied under this key: checked anew (a signature covers its key), and refused.
    const other = `${a.peerId}.7`
    const goneOther = a.sign(OFFERS, other, { v: 1, gone: true })
    await merged(replica, OFFERS, [[other, goneOther, a.peerId]], 4)
    await merged(replica, OFFERS, [[key, goneOther, a.peerId]], 30)
    assert.deepEqual(((await replica.read({ flavour: 'ttl', type: OFFERS })).table.get(key) as Entry).data, signed)
    // Ana's own newer copy (a renewal, a withdrawal) is taken.
    const gone = a.sign(OFFERS, key, { v: 1, gone: true })
    await merged(replica, OFFERS, [[key, gone, a.peerId]], 5)
    assert.deepEqual(((await replica.read({ flavour: 'ttl', type: OFFERS })).table.get(key) as Entry).data, gone)
  })
})
