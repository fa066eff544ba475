import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { toBase64Url } from '../../src/core/base64url.js'
import type { Entry, Json, Table, TypeName } from '../../src/core/types.js'
import { createIdentity, type Identity } from '../../src/identity/identity.js'
import { KEYS_TABLE, KeyDirectory } from '../../src/overlay/key-directory.js'
import { MAIL_PER_SENDER, MAIL_TABLE, MAIL_TTL, MAX_MAIL_TTL, MAX_OPENED_PER_READ, PrivateMessages } from '../../src/overlay/private-messages.js'
import { PRESENCE_TABLE } from '../../src/overlay/presence.js'
import { roomOwnType } from '../../src/overlay/room-tables.js'
import { Replica } from '../../src/replica/replica.js'
import { PER_KEY_QUOTA, roomAdmission, type CheckedTable } from '../../src/signaling/room-admission.js'
import { keySigner, recordSigner } from '../../src/signaling/signed-records.js'
import { MemoryStore } from '../../src/storage/memory-store.js'

const PRESENCE = roomOwnType('plaza', PRESENCE_TABLE)
const KEYS = roomOwnType('plaza', KEYS_TABLE)
const MAIL = roomOwnType('plaza', MAIL_TABLE)

/** A router's replica that admits as malla routers and pages do, counting what it refused. */
function router(): { replica: Replica; refused: Record<CheckedTable, number> } {
  const refused: Record<CheckedTable, number> = { offers: 0, answers: 0, presence: 0, keys: 0, mail: 0 }
  return { replica: new Replica({ store: new MemoryStore(), author: 'router', admit: roomAdmission((t) => refused[t]++) }), refused }
}

/** Entries as they would arrive from the mesh, in one table (one copy per key); `arriveEach` for several copies of a key. */
async function arrive(replica: Replica, type: TypeName, entries: ReadonlyArray<readonly [string, Json, string, number?]>): Promise<void> {
  await replica.merge(type, new Map(entries.map(([k, data, author, ttl]) => [k, { data, author, bleachTTL: ttl ?? 9 } as Entry])) as Table)
}

async function arriveEach(replica: Replica, type: TypeName, entries: ReadonlyArray<readonly [string, Json, string, number?]>): Promise<void> {
  for (const entry of entries) await arrive(replica, type, [entry])
}

async function table(replica: Replica, type: TypeName): Promise<ReadonlyMap<string, Entry>> {
  return (await replica.read({ flavour: 'ttl', type })).table as ReadonlyMap<string, Entry>
}

/** What one person's page writes: its own replica, directory and messages. */
function page(identity: Identity): { replica: Replica; directory: KeyDirectory; messages: PrivateMessages } {
  const replica = new Replica({ store: new MemoryStore(), author: recordSigner(identity).peerId, admit: roomAdmission() })
  const sign = keySigner(identity)
  const directory = new KeyDirectory({ replica, type: KEYS, identity, sign })
  return { replica, directory, messages: new PrivateMessages({ replica, type: MAIL, identity, directory, sign }) }
}

/** Copies `types` from one replica to another, as a sync would. */
async function carry(from: Replica, to: Replica, ...types: TypeName[]): Promise<void> {
  for (const type of types) await to.merge(type, (await table(from, type)) as Table)
}

describe('what a replica admits of a room\'s own tables', () => {
  let ana: Identity
  let bea: Identity
  let mallory: Identity
  before(async () => {
    ;[ana, bea, mallory] = await Promise.all([createIdentity('Ana'), createIdentity('Bea'), createIdentity('Mallory')])
  })

  it('presence of a key-bound peer: only its own signed entry, and only its own signed withdrawal', async () => {
    const { replica, refused } = router()
    const a = recordSigner(ana)
    const m = recordSigner(mallory)
    const signed = a.sign(PRESENCE, a.peerId, { v: 1, n: 'Ana', l: [] })
    await arrive(replica, PRESENCE, [[a.peerId, signed, a.peerId, 4], ['legacypeer000001', { v: 1, n: 'Old' }, 'legacypeer000001']])
    await arriveEach(replica, PRESENCE, [
      [a.peerId, { v: 1, n: 'Ana (fake)', l: [] }, a.peerId, 30],
      [a.peerId, null, a.peerId, 30],
      [a.peerId, m.sign(PRESENCE, a.peerId, { v: 1, gone: true }), a.peerId, 30],
      [a.peerId, signed, m.peerId, 30],
    ])
    assert.deepEqual((await table(replica, PRESENCE)).get(a.peerId)?.data, signed)
    assert.equal(refused.presence, 4)
    // The unsigned peer is LibreMesh's rules as ever; Ana's own signed withdrawal is taken.
    const gone = a.sign(PRESENCE, a.peerId, { v: 1, gone: true })
    await arrive(replica, PRESENCE, [[a.peerId, gone, a.peerId, 5], ['legacypeer000001', null, 'someone', 30]])
    const after = await table(replica, PRESENCE)
    assert.deepEqual(after.get(a.peerId)?.data, gone)
    assert.equal(after.get('legacypeer000001')?.data, null)
  })

  it('the key directory keeps a key only under its own fingerprint, signed by itself', async () => {
    const { replica, refused } = router()
    const anaPage = page(ana)
    await anaPage.directory.publish('Ana')
    await carry(anaPage.replica, replica, KEYS)
    const real = (await table(replica, KEYS)).get(ana.fingerprint)?.data
    assert.ok(real)
    const sign = keySigner(mallory)
    const ownFpr = mallory.fingerprint
    await arriveEach(replica, KEYS, [
      // Mallory's key under Ana's fingerprint, signed by Mallory.
      [ana.fingerprint, sign(KEYS, ana.fingerprint, { v: 1, pk: toBase64Url(mallory.publicKeyBytes), n: 'Ana' }), 'x', 30],
      // Mallory's key with Ana's name, signed by Ana's copied proof: the signature does not cover it.
      [ana.fingerprint, { ...(real as object), n: 'Ana (fake)' }, 'x', 30],
      // Ana's key under Mallory's fingerprint.
      [ownFpr, real, 'x', 30],
      // Mallory's signature over Ana's key packets under Mallory's fingerprint: the key is not the signer.
      [ownFpr, sign(KEYS, ownFpr, { v: 1, pk: toBase64Url(ana.publicKeyBytes), n: 'Ana' }), 'x', 30],
      [ana.fingerprint, null, 'x', 30],
      ['not-a-fingerprint', { v: 1 }, 'x'],
    ])
    const kept = await table(replica, KEYS)
    assert.deepEqual([...kept.keys()], [ana.fingerprint])
    assert.deepEqual(kept.get(ana.fingerprint)?.data, real)
    assert.equal(refused.keys, 6)
    // Mallory's own entry is fine.
    await arrive(replica, KEYS, [[ownFpr, sign(KEYS, ownFpr, { v: 1, pk: toBase64Url(mallory.publicKeyBytes), n: 'Mallory' }), 'x']])
    assert.equal((await table(replica, KEYS)).size, 2)
    const read = await new KeyDirectory({ replica, type: KEYS }).list()
    assert.deepEqual(read.map((e) => [e.fingerprint, e.name]).sort(), [[ana.fingerprint, 'Ana'], [ownFpr, 'Mallory']].sort())
  })

  it('a message waits for its recipient, who alone reads it and removes it; nobody else can', async () => {
    const anaPage = page(ana)
    const beaPage = page(bea)
    const { replica: routerReplica, refused } = router()
    await anaPage.directory.publish('Ana')
    await beaPage.directory.publish('Bea')
    // Bea left; her key stayed in the room's directory. Ana leaves her a message.
    await carry(beaPage.replica, routerReplica, KEYS)
    await carry(anaPage.replica, routerReplica, KEYS)
    await carry(routerReplica, anaPage.replica, KEYS)
    const before = Date.now()
    await anaPage.messages.post(bea.fingerprint, 'm1', '¿vienes mañana?')
    await carry(anaPage.replica, routerReplica, MAIL)
    const key = `${bea.fingerprint}.${ana.fingerprint}.m1`
    const stored = (await table(routerReplica, MAIL)).get(key)
    assert.equal(stored?.bleachTTL, MAIL_TTL)
    assert.doesNotMatch(JSON.stringify(stored?.data), /vienes/, 'what waits is encrypted')

    // Bea comes back with a new page: the message is hers, from Ana, dated when Ana wrote it.
    const back = page(bea)
    const mail = new Promise<void>((resolve) => back.messages.on('mail', resolve))
    await carry(routerReplica, back.replica, KEYS, MAIL)
    await mail
    const { messages: waiting } = await back.messages.waiting()
    assert.deepEqual(waiting.map((w) => [w.key, w.from, w.fromName, w.text]), [[key, ana.fingerprint, 'Ana', '¿vienes mañana?']])
    assert.ok((waiting[0]?.at ?? 0) >= Math.floor(before / 1000) * 1000 && (waiting[0]?.at ?? 0) <= Date.now())
    // Mallory sees it but cannot read it, and her removal of it is not taken.
    const malloryPage = page(mallory)
    await carry(routerReplica, malloryPage.replica, KEYS, MAIL)
    assert.deepEqual(await malloryPage.messages.waiting(), { messages: [], more: false })
    await assert.rejects(malloryPage.messages.remove(key), /not a message to this person/)
    await arriveEach(routerReplica, MAIL, [[key, keySigner(mallory)(MAIL, key, { v: 1, gone: true }), 'x', 100], [key, null, 'x', 100]])
    assert.deepEqual((await table(routerReplica, MAIL)).get(key)?.data, stored?.data)
    assert.equal(refused.mail, 2)
    // Bea's removal is taken everywhere; the message is not delivered again.
    await back.messages.remove(key)
    await carry(back.replica, routerReplica, MAIL)
    assert.equal(((await table(routerReplica, MAIL)).get(key)?.data as { gone?: boolean }).gone, true)
    await carry(routerReplica, beaPage.replica, KEYS, MAIL)
    assert.deepEqual(await beaPage.messages.waiting(), { messages: [], more: false })
  })

  it('mail: forged senders, oversized, immortal and over-quota messages are refused', async () => {
    const { replica, refused } = router()
    const sign = keySigner(mallory)
    const to = bea.fingerprint
    const m = (n: number) => `${to}.${mallory.fingerprint}.n${n}`
    // Signed by Mallory, claiming to be from Ana.
    const asAna = `${to}.${ana.fingerprint}.x1`
    await arrive(replica, MAIL, [[asAna, sign(MAIL, asAna, { v: 1, m: 'hi' }), 'x']])
    await arrive(replica, MAIL, [[m(0), sign(MAIL, m(0), { v: 1, m: 'x'.repeat(9000) }), 'x']])
    await arrive(replica, MAIL, [[m(0), sign(MAIL, m(0), { v: 1, m: 'hi' }), 'x', MAX_MAIL_TTL + 1]])
    await arrive(replica, MAIL, [[m(0), { v: 1, m: 'hi' }, 'x']])
    assert.equal((await table(replica, MAIL)).size, 0)
    assert.equal(refused.mail, 4)
    // A flood of messages from one key: the first MAIL_PER_SENDER are kept, in one batch or in many.
    await arrive(replica, MAIL, Array.from({ length: 40 }, (_, n) => [m(n), sign(MAIL, m(n), { v: 1, m: `hola ${n}` }), 'x'] as const))
    for (let n = 40; n < 50; n++) await arrive(replica, MAIL, [[m(n), sign(MAIL, m(n), { v: 1, m: `hola ${n}` }), 'x']])
    assert.equal((await table(replica, MAIL)).size, MAIL_PER_SENDER)
    // Another sender is not held back by Mallory's flood; a removal frees a place.
    const fromAna = `${to}.${ana.fingerprint}.a1`
    await arrive(replica, MAIL, [[fromAna, keySigner(ana)(MAIL, fromAna, { v: 1, m: 'hola' }), 'x']])
    // Its sender cannot take a message back; its recipient's removal frees a place.
    const before = refused.mail
    await arrive(replica, MAIL, [[m(0), sign(MAIL, m(0), { v: 1, gone: true }), 'x', 20]])
    assert.equal(refused.mail, before + 1)
    await arrive(replica, MAIL, [[m(0), keySigner(bea)(MAIL, m(0), { v: 1, gone: true }), 'x', 20]])
    await arrive(replica, MAIL, [[m(60), sign(MAIL, m(60), { v: 1, m: 'again' }), 'x']])
    const kept = await table(replica, MAIL)
    assert.ok(kept.has(fromAna) && kept.has(m(60)))
    assert.equal(kept.size, MAIL_PER_SENDER + 2)
  })

  it('one key keeps at most its quota of live offers in a table (decoys), its withdrawals and other keys aside', async () => {
    const { replica, refused } = router()
    const OFFERS = roomOwnType('plaza', '_offers')
    const offer = (s: ReturnType<typeof recordSigner>, n: number) => [`${s.peerId}.${n}`, s.sign(OFFERS, `${s.peerId}.${n}`, { v: 1, room: 'plaza', s: [], exp: Date.now() + 60_000 }), s.peerId] as const
    const sessions = Array.from({ length: 20 }, () => recordSigner(mallory))
    // 20 sessions of one key, 3 offers each, in one batch and then one by one.
    await arrive(replica, OFFERS, sessions.slice(0, 10).flatMap((s) => [0, 1, 2].map((n) => offer(s, n))))
    await arriveEach(replica, OFFERS, sessions.slice(10).flatMap((s) => [0, 1, 2].map((n) => offer(s, n))))
    assert.equal((await table(replica, OFFERS)).size, PER_KEY_QUOTA.offers)
    assert.equal(refused.offers, 60 - PER_KEY_QUOTA.offers)
    // Someone else's offers are not held back; a renewal of a kept offer is no new one; a withdrawal frees a place.
    const a = recordSigner(ana)
    await arrive(replica, OFFERS, [offer(a, 0)])
    const kept = [...(await table(replica, OFFERS)).keys()].find((k) => k.startsWith('k') && !k.startsWith(a.peerId)) as string
    const owner = sessions.find((s) => kept.startsWith(s.peerId)) as ReturnType<typeof recordSigner>
    await arrive(replica, OFFERS, [[kept, owner.sign(OFFERS, kept, { v: 1, room: 'plaza', s: [1], exp: Date.now() + 60_000 }), owner.peerId, 12]])
    await arrive(replica, OFFERS, [[kept, owner.sign(OFFERS, kept, { v: 1, gone: true }), owner.peerId, 13]])
    const fresh = recordSigner(mallory)
    await arrive(replica, OFFERS, [offer(fresh, 0), offer(fresh, 1)])
    const after = await table(replica, OFFERS)
    assert.ok(after.has(`${a.peerId}.0`))
    assert.equal([...after.keys()].filter((k) => k.startsWith(fresh.peerId)).length, 1, 'one place freed, one taken')
  })

  it('a page opens at most a few waiting messages a read, and each only once', async () => {
    // Bea's page, counting what it decrypts.
    let opened = 0
    const counting: Identity = { ...bea, decrypt: (armored, from) => (opened++, bea.decrypt(armored, from)) }
    const [anaPage, malloryPage, beaPage] = [page(ana), page(mallory), page(counting)]
    for (const p of [anaPage, malloryPage, beaPage]) await p.directory.publish(undefined)
    for (const p of [anaPage, malloryPage]) await carry(beaPage.replica, p.replica, KEYS)
    for (let i = 0; i < 10; i++) {
      await anaPage.messages.post(bea.fingerprint, `a${i}`, `de Ana ${i}`)
      await malloryPage.messages.post(bea.fingerprint, `m${i}`, `de Mallory ${i}`)
    }
    for (const p of [anaPage, malloryPage]) await carry(p.replica, beaPage.replica, KEYS, MAIL)
    const reads: number[] = []
    let more = true
    while (more) {
      const r = await beaPage.messages.waiting()
      reads.push(r.messages.length)
      more = r.more
    }
    assert.deepEqual(reads, [MAX_OPENED_PER_READ, 2 * MAX_OPENED_PER_READ, 20])
    assert.equal(opened, 20)
    // Read again: what each gave is remembered, nothing is decrypted anew.
    assert.equal((await beaPage.messages.waiting()).messages.length, 20)
    assert.equal(opened, 20)
  })
})

