import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CLOCK_PATTERN, compareClocks, isValidClock, MAX_CLOCK, MAX_CLOCK_LEAD_MS, WriteClock } from '../../src/core/clock.js'

/** A wall clock the test moves by hand. */
function fakeNow(start: number): { now: () => number; set(ms: number): void } {
  let t = start
  return { now: () => t, set: (ms) => (t = ms) }
}

const asNumbers = (clocks: string[]): number[] => clocks.map(Number)

function assertIncreasing(clocks: string[]): void {
  for (let i = 1; i < clocks.length; i++) {
    assert.ok(compareClocks(clocks[i - 1] as string, clocks[i] as string) < 0, `not increasing: ${clocks.join(', ')}`)
  }
}

describe('WriteClock', () => {
  it('starts from wall time, in whole milliseconds', () => {
    const wall = fakeNow(1_700_000_000_123.9)
    assert.equal(new WriteClock(wall.now).tick(), '1700000000123')
  })

  it('follows the wall clock while it moves forward', () => {
    const wall = fakeNow(1000)
    const clock = new WriteClock(wall.now)
    const ticks = [clock.tick()]
    wall.set(5000)
    ticks.push(clock.tick())
    wall.set(5001)
    ticks.push(clock.tick())
    assert.deepEqual(ticks, ['1000', '5000', '5001'])
  })

  it('still increases when the wall clock stands still', () => {
    const clock = new WriteClock(() => 42)
    assert.deepEqual(asNumbers([clock.tick(), clock.tick(), clock.tick()]), [42, 43, 44])
  })

  it('still increases when the wall clock goes backwards', () => {
    const wall = fakeNow(10_000)
    const clock = new WriteClock(wall.now)
    const ticks = [clock.tick()]
    wall.set(3_000) // NTP stepped the clock back
    ticks.push(clock.tick(), clock.tick())
    wall.set(9_999)
    ticks.push(clock.tick())
    wall.set(20_000)
    ticks.push(clock.tick())
    assertIncreasing(ticks)
    assert.deepEqual(asNumbers(ticks), [10_000, 10_001, 10_002, 10_003, 20_000])
  })

  it('issues only canonical decimal strings that the wire schema accepts', () => {
    const clock = new WriteClock(() => 0)
    for (const c of [clock.tick(), clock.tick(), new WriteClock(() => 1_700_000_000_000.5).tick()]) {
      assert.match(c, CLOCK_PATTERN)
    }
  })

  it('ticks past a larger clock it observed from a remote entry', () => {
    const clock = new WriteClock(() => 1000)
    clock.tick()
    clock.observe('900000')
    const next = clock.tick()
    assert.ok(compareClocks(next, '900000') > 0, next)
    assert.equal(next, '900001')
  })

  it('keeps following the wall clock once it passes an observed clock', () => {
    const wall = fakeNow(1000)
    const clock = new WriteClock(wall.now)
    clock.observe('2000')
    assert.equal(clock.tick(), '2001')
    wall.set(50_000)
    assert.equal(clock.tick(), '50000')
  })

  it('ignores smaller observed clocks and a missing one', () => {
    const clock = new WriteClock(() => 1000)
    assert.equal(clock.tick(), '1000')
    clock.observe('5')
    clock.observe(undefined)
    assert.equal(clock.tick(), '1001')
  })

  it('orders a write after every clock it observed within the lead bound, decades apart included', () => {
    // A router with no real-time clock (wall time near 1970) hears from routers at today's date.
    const clock = new WriteClock(() => 60_000)
    for (const seen of ['17', '1700000000000', String(60_000 + MAX_CLOCK_LEAD_MS - 1)]) {
      clock.observe(seen)
      const next = clock.tick()
      assert.ok(compareClocks(next, seen) > 0, `${next} after observing ${seen}`)
    }
  })

  it('does not let one received clock drag it past the lead bound: its own writes stay valid', () => {
    const wall = fakeNow(1_700_000_000_000)
    const clock = new WriteClock(wall.now)
    clock.observe(String(MAX_CLOCK - 1)) // a poisoned entry: valid on the wire, just under 2^53
    const ticks = [clock.tick(), clock.tick(), clock.tick()]
    assertIncreasing(ticks)
    for (const c of ticks) {
      assert.ok(isValidClock(c), c)
      assert.ok(Number(c) <= 1_700_000_000_000 + MAX_CLOCK_LEAD_MS + 3, c)
    }
    // Renewing the poison does not ratchet it further: the bound follows the wall clock, not the last clock.
    for (let i = 0; i < 1000; i++) clock.observe(String(MAX_CLOCK - 2 - i))
    assert.ok(Number(clock.tick()) <= 1_700_000_000_000 + MAX_CLOCK_LEAD_MS + 4)
    wall.set(1_700_000_060_000)
    assert.ok(isValidClock(clock.tick()))
  })

  it('never issues an invalid clock, even from an absurd wall clock', () => {
    const clock = new WriteClock(() => Number.MAX_VALUE)
    assert.ok(isValidClock(clock.tick()))
    assert.ok(isValidClock(clock.tick()))
  })
})

describe('compareClocks', () => {
  it('orders clocks numerically, whatever their lengths', () => {
    const sorted = ['0', '1', '2', '9', '10', '11', '99', '100', '1000', '1699999999999', '1700000000000', String(MAX_CLOCK)]
    const shuffled = [sorted[5], sorted[0], sorted[11], sorted[3], sorted[7], sorted[1], sorted[9], sorted[4], sorted[10], sorted[2], sorted[8], sorted[6]] as string[]
    assert.deepEqual(shuffled.slice().sort(compareClocks), sorted)
    assert.deepEqual(shuffled.slice().sort(compareClocks), shuffled.slice().sort((a, b) => Number(a) - Number(b)))
  })

  it('returns the sign of the numeric difference and 0 for equal clocks', () => {
    assert.ok(compareClocks('9', '10') < 0)
    assert.ok(compareClocks('10', '9') > 0)
    assert.ok(compareClocks('100', '99') > 0)
    assert.ok(compareClocks('123', '124') < 0)
    assert.equal(compareClocks('123', '123'), 0)
  })
})
