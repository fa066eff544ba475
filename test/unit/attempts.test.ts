import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isMallaError } from '../../src/core/errors.js'
import type { RtcPeer } from '../../src/rtc/rtc-peer.js'
import { type AttemptKind, type AttemptState, Attempts, mayMove } from '../../src/signaling/attempts.js'
import { FakeRtcNetwork } from '../helpers/fake-rtc.js'

const STATES: readonly AttemptState[] = ['gathering', 'published', 'taken', 'answering', 'dialing', 'linked', 'ended']

function book() {
  let clock = 1000
  const attempts = new Attempts(() => clock)
  const rtc = (): RtcPeer => new FakeRtcNetwork().factory()()
  return { attempts, rtc, tick: (ms: number) => (clock += ms) }
}

test('the machine has exactly the moves of docs/protocol.md §12.3: forward along each kind, or to ended before linked', () => {
  const expected: Record<AttemptKind, string[]> = {
    offer: ['gathering>published', 'gathering>ended', 'published>taken', 'published>ended', 'taken>linked', 'taken>ended'],
    answer: ['answering>linked', 'answering>ended'],
    direct: ['dialing>linked', 'dialing>ended'],
  }
  for (const kind of ['offer', 'answer', 'direct'] as const) {
    const moves = STATES.flatMap((from) => STATES.filter((to) => mayMove(kind, from, to)).map((to) => `${from}>${to}`))
    assert.deepEqual(moves.sort(), [...expected[kind]].sort(), kind)
  }
})

test('an offer goes gathering → published → taken → linked, leaves the book when linked, and records when it entered each state', () => {
  const { attempts, rtc, tick } = book()
  const o = attempts.offer({ key: 'aaaaaaaa.0', rtc: rtc(), expiresAt: 0, renewals: 0 })
  assert.equal(o.state, 'gathering')
  assert.equal(o.startedAt, 1000)
  assert.deepEqual(attempts.list('offer', 'gathering'), [o])
  tick(5)
  assert.equal(attempts.move(o, 'published'), true)
  assert.equal(o.enteredAt, 1005)
  assert.equal(attempts.ownOffer('aaaaaaaa.0'), o)
  tick(7)
  assert.equal(attempts.move(o, 'taken'), true)
  assert.equal(o.enteredAt, 1012)
  assert.deepEqual(attempts.list('offer', 'gathering', 'published'), [])
  assert.deepEqual(attempts.list('offer', 'taken'), [o])
  assert.equal(attempts.move(o, 'linked'), true)
  assert.equal(o.state, 'linked')
  assert.equal(attempts.size, 0)
  assert.equal(attempts.ownOffer('aaaaaaaa.0'), undefined)
  // Over: a late callback that tries to end it finds nothing to do.
  assert.equal(attempts.end(o), false)
  assert.equal(o.state, 'linked')
})

test('a move the machine does not have is a programming error (INTERNAL), and leaves the attempt where it was', () => {
  const { attempts, rtc } = book()
  const o = attempts.offer({ key: 'aaaaaaaa.1', rtc: rtc(), expiresAt: 0, renewals: 0 })
  // An answer applied to an offer not published yet, or an offer that opens without an answer.
  assert.throws(() => attempts.move(o, 'taken'), (e) => isMallaError(e, 'INTERNAL'))
  assert.throws(() => attempts.move(o, 'linked'), (e) => isMallaError(e, 'INTERNAL'))
  assert.equal(o.state, 'gathering')
  const a = attempts.answer({ key: 'k', offer: 'bbbbbbbb.0', remote: 'bbbbbbbb', router: undefined, rtc: rtc() })
  assert.throws(() => attempts.move(a, 'published'), (e) => isMallaError(e, 'INTERNAL'))
  assert.equal(a.state, 'answering')
  assert.equal(attempts.size, 2)
})

test('whoever ends an attempt first does the cleaning up: a second end, or a move after it, does nothing', () => {
  const { attempts, rtc } = book()
  const a = attempts.answer({ key: 'k', offer: 'bbbbbbbb.0', remote: 'bbbbbbbb', router: 'r1', rtc: rtc() })
  assert.deepEqual(attempts.list('answer'), [a])
  assert.equal(attempts.is(a, 'answering'), true)
  assert.equal(attempts.end(a), true)
  assert.equal(attempts.end(a), false)
  assert.equal(attempts.move(a, 'linked'), false)
  assert.equal(a.state, 'ended')
  assert.equal(attempts.is(a), false)
  assert.deepEqual(attempts.list('answer'), [])
})

test('endAll ends every live attempt of every kind once, and hands them back to be closed', () => {
  const { attempts, rtc } = book()
  const o = attempts.offer({ key: 'aaaaaaaa.2', rtc: rtc(), expiresAt: 0, renewals: 0 })
  const a = attempts.answer({ key: 'k', offer: 'bbbbbbbb.0', remote: 'bbbbbbbb', router: undefined, rtc: rtc() })
  const d = attempts.direct({ key: 'aaaaaaaa.d1', remote: 'cccccccc', offerer: 'aaaaaaaa', rtc: rtc() })
  const linked = attempts.direct({ key: 'aaaaaaaa.d2', remote: 'dddddddd', offerer: 'aaaaaaaa', rtc: rtc() })
  attempts.move(linked, 'linked')
  assert.deepEqual(attempts.list('direct'), [d])
  const ended = attempts.endAll()
  assert.deepEqual(new Set(ended), new Set([o, a, d]))
  assert.ok(ended.every((x) => x.state === 'ended'))
  assert.equal(attempts.size, 0)
  assert.equal(attempts.endAll().length, 0)
})
