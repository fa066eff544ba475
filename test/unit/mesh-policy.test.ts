import assert from 'node:assert/strict'
import { test } from 'node:test'
import { answerOver, attemptsAtOnce, glare, keptConnection, offersToAnswer, offersWanted, OPEN_DEADLINE_MS, openDeadline, pickAnswer, UNKNOWN_HOPS } from '../../src/signaling/mesh-policy.js'
import type { AnswerRecord, OfferRecord } from '../../src/signaling/signal-records.js'
import type { TablesView } from '../../src/signaling/signal-tables.js'

const NOW = 1_000_000
const session = { ufrag: 'u', pwd: 'p', fingerprint: 'f', setup: 'actpass', candidates: [] } as unknown as OfferRecord['session']
const offer = (peer: string, n: number, router?: string, expiresAt = NOW + 60_000): TablesView['offers'][number] => ({
  key: `${peer}.${n}`,
  record: { kind: 'offer', room: 'r', peer, ...(router ? { router } : {}), session, expiresAt },
})
const answer = (peer: string, to: string, n: number): AnswerRecord => ({ kind: 'answer', peer, to, offer: `${to}.${n}`, session, expiresAt: NOW + 10_000 })
const hopsFrom = (table: Record<string, number>) => (router: string | undefined) => (router === undefined ? UNKNOWN_HOPS : (table[router] ?? UNKNOWN_HOPS))
const choice = { self: 'self0000', now: NOW, room: 3, failed: new Set<string>(), busyWith: () => false, hops: hopsFrom({ r0: 0, r1: 1, r2: 2 }) }

test('offersToAnswer: same router first, then fewer hops, unknown last; one per remote peer; at most `room`', () => {
  const view: TablesView = { offers: [offer('far00000', 0, 'r2'), offer('unknown0', 0), offer('near0000', 0, 'r1'), offer('near0000', 1, 'r1'), offer('home0000', 0, 'r0')], answers: [] }
  const chosen = offersToAnswer(view, { ...choice, room: 10 })
  assert.equal(new Set(chosen.map((o) => o.record.peer)).size, chosen.length, 'one offer per remote peer')
  assert.deepEqual(
    chosen.map((o) => o.record.peer),
    ['home0000', 'near0000', 'far00000', 'unknown0'],
  )
  assert.deepEqual(
    offersToAnswer(view, { ...choice, room: 2 }).map((o) => o.record.peer),
    ['home0000', 'near0000'],
  )
  assert.deepEqual(offersToAnswer(view, { ...choice, room: 0 }), [])
})

test('offersToAnswer skips own, expired, failed, already answered, withdrawn and taken offers, and peers it is busy with', () => {
  const view: TablesView = {
    offers: [
      offer('self0000', 0),
      offer('expired0', 0, undefined, NOW),
      offer('failed00', 0),
      offer('answered', 0),
      offer('busy0000', 0),
      { key: 'gone0000.0', record: 'withdrawn' },
      { key: 'taken000.0', record: { kind: 'taken', peer: 'taken000', by: 'other000', expiresAt: NOW + 1000 } },
      offer('good0000', 0),
    ],
    answers: [{ key: 'answered.0>other000', record: answer('other000', 'answered', 0) }],
  }
  const chosen = offersToAnswer(view, { ...choice, failed: new Set(['failed00.0']), busyWith: (p) => p === 'busy0000' })
  assert.deepEqual(
    chosen.map((o) => o.key),
    ['good0000.0'],
  )
})

test('offersToAnswer: each peer has its own order among equally near offers, so answerers spread', () => {
  const view: TablesView = { offers: Array.from({ length: 8 }, (_, i) => offer(`peer000${i}`, 0, 'r1')), answers: [] }
  const firsts = new Set(['aaaaaaaa', 'bbbbbbbb', 'cccccccc', 'dddddddd', 'eeeeeeee'].map((self) => offersToAnswer(view, { ...choice, self, room: 1 })[0]?.key))
  assert.ok(firsts.size >= 3, `five answerers picked ${firsts.size} different offers first`)
})

test('pickAnswer takes the lowest answerer id; glare keeps the offer of the lower id; one connection of two is kept, the same at both ends', () => {
  assert.equal(pickAnswer([answer('cccccccc', 'a', 0), answer('bbbbbbbb', 'a', 0), answer('dddddddd', 'a', 0)])?.peer, 'bbbbbbbb')
  assert.equal(pickAnswer([]), undefined)
  assert.equal(glare('aaaaaaaa', 'bbbbbbbb'), 'take-theirs')
  assert.equal(glare('bbbbbbbb', 'aaaaaaaa'), 'keep-mine')
  const one = { offerer: 'bbbbbbbb', offer: 'bbbbbbbb.3' }
  const two = { offerer: 'aaaaaaaa', offer: 'aaaaaaaa.7' }
  assert.equal(keptConnection([one, two]).keep, two)
  assert.equal(keptConnection([two, one]).keep, two, 'whatever the order they opened in')
  assert.deepEqual(keptConnection([one, two]).drop, [one])
})

test('offersWanted: the pool below target, one from target to max, none at max', () => {
  const s = { target: 3, max: 6, pool: 3 }
  assert.deepEqual(
    [0, 2, 3, 5, 6, 7].map((n) => offersWanted(n, s)),
    [3, 3, 1, 1, 0, 0],
  )
  assert.equal(offersWanted(4, { target: 3, max: 6, pool: 0 }), 0)
})

test('answerOver: lost when the offer is gone, withdrawn or taken by another; timeout past the deadline or the expiry', () => {
  const a = { self: 'self0000', startedAt: NOW - 1000, now: NOW, connectTimeoutMs: 10_000 }
  assert.equal(answerOver(undefined, a), 'lost')
  assert.equal(answerOver('withdrawn', a), 'lost')
  assert.equal(answerOver({ kind: 'taken', peer: 'o', by: 'other000', expiresAt: NOW + 1 }, a), 'lost')
  assert.equal(answerOver({ kind: 'taken', peer: 'o', by: 'self0000', expiresAt: NOW + 1 }, a), undefined)
  assert.equal(answerOver(offer('o0000000', 0).record as OfferRecord, a), undefined)
  assert.equal(answerOver(offer('o0000000', 0).record as OfferRecord, { ...a, startedAt: NOW - 10_001 }), 'timeout')
  assert.equal(answerOver(offer('o0000000', 0, undefined, NOW).record as OfferRecord, a), 'timeout')
})

test('after failures in a row: one attempt at a time, and a taken offer waits longer (doubling up to the connect timeout) before it is given up', () => {
  assert.equal(attemptsAtOnce(0, 3), 3)
  assert.equal(attemptsAtOnce(0, Number.POSITIVE_INFINITY), Number.POSITIVE_INFINITY)
  assert.equal(attemptsAtOnce(1, 3), 1)
  assert.equal(attemptsAtOnce(5, 0), 0)
  assert.deepEqual(
    [0, 1, 2, 3, 20].map((f) => openDeadline(f, 10_000)),
    [OPEN_DEADLINE_MS, 2 * OPEN_DEADLINE_MS, 4 * OPEN_DEADLINE_MS, 10_000, 10_000].map((ms) => Math.min(ms, 10_000)),
  )
  assert.equal(openDeadline(0, 1000), 1000, 'never past the connect timeout')
})

test('offersToAnswer skips the offers of peers known to have left (a closed tab whose offers linger)', () => {
  const view: TablesView = { offers: [offer('left0000', 0, 'r0'), offer('stay0000', 0, 'r1')], answers: [] }
  assert.deepEqual(offersToAnswer(view, { ...choice, gone: (p) => p === 'left0000' }).map((o) => o.record.peer), ['stay0000'])
  assert.deepEqual(offersToAnswer(view, choice).map((o) => o.record.peer), ['left0000', 'stay0000'], 'without the rule the nearer one comes first')
})

test('offersToAnswer: one attempt per key, whatever session ids it signs under; none for a key whose offers failed lately', () => {
  const signed = (peer: string, signer: string): TablesView['offers'][number] => {
    const o = offer(peer, 0, 'r0')
    return { key: o.key, record: { ...(o.record as OfferRecord), signer } }
  }
  // One key behind many session ids (decoys), two other people.
  const view: TablesView = { offers: [...['kdecoy1', 'kdecoy2', 'kdecoy3', 'kdecoy4'].map((p) => signed(`${p}aaaaaaaaaaaaaaaaaa`, 'MALLORY')), signed('kanaaaaaaaaaaaaaaaaaaaaaaa', 'ANA'), offer('unsigned', 0, 'r0')], answers: [] }
  const chosen = offersToAnswer(view, { ...choice, room: 10 })
  assert.deepEqual(chosen.map((o) => o.record.signer ?? o.record.peer).sort(), ['ANA', 'MALLORY', 'unsigned'])
  const cooled = offersToAnswer(view, { ...choice, room: 10, failedSigner: (f) => f === 'MALLORY' })
  assert.deepEqual(cooled.map((o) => o.record.signer ?? o.record.peer).sort(), ['ANA', 'unsigned'])
  const busy = offersToAnswer(view, { ...choice, room: 10, answeringSigner: (f) => f === 'MALLORY' })
  assert.deepEqual(busy.map((o) => o.record.signer ?? o.record.peer).sort(), ['ANA', 'unsigned'])
})
