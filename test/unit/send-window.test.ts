import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SendWindow } from '../../src/files/send-window.js'

/** The sender's delay-paced window (src/files/send-window.ts), fed round trips by hand. */

const FRAME = 64 * 1024
const MAX = 4 * FRAME

/** Feeds `n` acks of a frame each, `rtt` ms after their frames, one every `gapMs` from `start`; returns the time after. */
function feed(w: SendWindow, n: number, rtt: number, start: number, gapMs = 5): number {
  let now = start
  for (let i = 0; i < n; i++) w.onAck(rtt, FRAME, (now += gapMs))
  return now
}

/** A window with the default frame and maximum, a 5 ms target, that has seen the path take 3 ms; and the time after. */
function onA3msPath(): { w: SendWindow; now: number } {
  const w = new SendWindow({ frameBytes: FRAME, maxBytes: MAX, targetMs: 5 })
  return { w, now: feed(w, 1, 3, 0) }
}

describe('SendWindow', () => {
  it('starts at the receiver\'s window and keeps it while round trips show no queue', () => {
    const w = new SendWindow({ frameBytes: FRAME, maxBytes: MAX })
    assert.equal(w.bytes, MAX)
    feed(w, 100, 3, 0)
    assert.equal(w.bytes, MAX)
  })

  it('shrinks, down to its least and no further, while round trips stay above the path\'s own by more than the target', () => {
    const w = new SendWindow({ frameBytes: FRAME, minBytes: FRAME + 1, maxBytes: MAX, targetMs: 5 })
    let now = feed(w, 1, 3, 0)
    let before = w.bytes
    // 20 ms of queue: four times the target.
    for (let i = 0; i < 3; i++) {
      now = feed(w, 1, 23, now)
      assert.ok(w.bytes < before, `${w.bytes} after a queued round trip, ${before} before`)
      before = w.bytes
    }
    feed(w, 50, 23, now)
    assert.equal(w.bytes, FRAME + 1)
  })

  it('grows back to the receiver\'s window once the queue falls under the target, and not past it', () => {
    let { w, now } = onA3msPath()
    now = feed(w, 50, 30, now)
    assert.equal(w.bytes, FRAME)
    now = feed(w, 2, 3, now)
    assert.ok(w.bytes > FRAME, `${w.bytes} after round trips with no queue`)
    feed(w, 100, 3, now)
    assert.equal(w.bytes, MAX)
  })

  it('holds steady at the target: a queue of exactly the target neither grows nor shrinks it', () => {
    let { w, now } = onA3msPath()
    now = feed(w, 10, 20, now)
    const held = w.bytes
    feed(w, 20, 8, now)
    assert.equal(w.bytes, held)
  })

  it('the path\'s own delay is the lowest of the last 10 to 20 s: after a route change to a longer path, the window comes back', () => {
    let { w, now } = onA3msPath()
    // The path now takes 40 ms each way round: seen as queue at first, then, 2 epochs on, as the path.
    now = feed(w, 20, 40, now)
    assert.equal(w.bytes, FRAME)
    now = feed(w, 40, 40, now, 1000)
    assert.equal(w.bytes, MAX)
  })

  it('one slow ack among quick ones (the receiver busy storing a part) moves the window by less than a frame, and it comes back', () => {
    const w = new SendWindow({ frameBytes: FRAME, maxBytes: MAX, targetMs: 5 })
    const now = feed(w, 1, 30, feed(w, 4, 3, 0))
    assert.ok(w.bytes < MAX && w.bytes > MAX - FRAME, `${w.bytes} after one slow ack`)
    feed(w, 8, 3, now)
    assert.equal(w.bytes, MAX)
  })

  it('ignores what cannot be a round trip: negative, not a number, nothing acknowledged', () => {
    const w = new SendWindow({ frameBytes: FRAME, maxBytes: MAX })
    feed(w, 1, 3, 0)
    w.onAck(-5, FRAME, 10)
    w.onAck(Number.NaN, FRAME, 11)
    w.onAck(500, 0, 12)
    assert.equal(w.bytes, MAX)
    // The base is still 3 ms: a 500 ms round trip now is queue.
    w.onAck(500, FRAME, 13)
    assert.ok(w.bytes < MAX)
  })
})
