import assert from 'node:assert/strict'
import { test } from 'node:test'
import { hopDistances, linksData, parseLinks } from '../../src/signaling/router-links.js'

test('hop distances over the routers\' links: breadth first, a link counts as soon as either end lists it', () => {
  // r1 - r2 - r3 - r4, and r5 alone; r3 has not published yet, r4 lists r3.
  const links = new Map<string, readonly string[]>([
    ['r1', ['r2']],
    ['r2', ['r1', 'r3']],
    ['r4', ['r3']],
    ['r5', []],
  ])
  const d = hopDistances(links, 'r1')
  assert.deepEqual(Object.fromEntries(d), { r1: 0, r2: 1, r3: 2, r4: 3 })
  assert.equal(d.get('r5'), undefined, 'not reachable: unknown')
  assert.equal(hopDistances(links, 'r4').get('r1'), 3, 'symmetric')
})

test('malla-links entries are read leniently: removed or malformed ones are skipped', () => {
  const table = new Map<string, { data?: unknown }>([
    ['r1', { data: linksData(['r3', 'r2', 'r2']) }],
    ['gone', {}],
    ['bad', { data: { v: 1, n: 'r1' } }],
    ['future', { data: { v: 2, n: ['r1'] } }],
  ])
  assert.deepEqual(Object.fromEntries(parseLinks(table)), { r1: ['r2', 'r3'] })
})
