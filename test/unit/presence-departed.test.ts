import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Entry } from '../../src/core/types.js'
import { departedPeers, displayName } from '../../src/overlay/presence.js'

const entry = (author: string, links: unknown, extra: object = {}): Entry => ({ author, bleachTTL: 8, data: { v: 1, l: links, ...extra } }) as unknown as Entry

test('departedPeers: a peer every one of whose listed connections has dropped it has left; new, alone or unknown peers have not', () => {
  const table = new Map<string, Entry>([
    // c was connected to a and b; both rewrote their entries without it: c closed its tab.
    ['a', entry('a', ['b'])],
    ['b', entry('b', ['a'])],
    ['c', entry('c', ['a', 'b'])],
    // d is new: no connection listed yet.
    ['d', entry('d', [])],
    // e lists a peer with no entry: nothing says it was dropped.
    ['e', entry('e', ['zz'])],
    // f was dropped by a but b still lists... no: b does not list f, and g (who lists f) does.
    ['f', entry('f', ['a', 'g'])],
    ['g', entry('g', ['f'])],
    // An entry written by someone else for h speaks for nobody.
    ['h', entry('mallory', ['a'])],
    ['i', { author: 'i', bleachTTL: 8, data: null } as unknown as Entry],
  ])
  assert.deepEqual([...departedPeers(table)].sort(), ['c'])
})

test('displayName keeps a readable name and drops control and direction-override characters', () => {
  assert.equal(displayName('  Ana  '), 'Ana')
  assert.equal(displayName('A\u0000n\u202ea'), 'Ana')
  assert.equal(displayName('x'.repeat(100))?.length, 64)
  assert.equal(displayName('🙂'.repeat(70)), '🙂'.repeat(64), 'counted in code points, never cut inside one')
  for (const bad of ['', '   ', '\u0007', 5, null, undefined, {}]) assert.equal(displayName(bad), undefined)
})
