import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { DraftTable } from '../../src/replica/draft-table.js'

const op = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), key: fc.constantFrom('a', 'b', 'c', 'd', 'e'), value: fc.integer() }),
  fc.record({ kind: fc.constant('delete' as const), key: fc.constantFrom('a', 'b', 'c', 'd', 'e') }),
)

test('a draft reads, iterates and materializes exactly like a copied Map given the same writes, and never touches its base', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer())), fc.array(op, { maxLength: 30 }), (start, ops) => {
      const base = new Map<string, number>(start)
      const frozen = [...base]
      const copy = new Map<string, number>(base)
      const draft = new DraftTable(base)
      for (const o of ops) {
        if (o.kind === 'set') {
          copy.set(o.key, o.value)
          draft.set(o.key, o.value)
        } else {
          assert.equal(draft.delete(o.key), copy.delete(o.key))
        }
        assert.equal(draft.size, copy.size)
      }
      for (const k of ['a', 'b', 'c', 'd', 'e']) {
        assert.equal(draft.has(k), copy.has(k))
        assert.equal(draft.get(k), copy.get(k))
      }
      assert.deepEqual([...draft], [...copy])
      assert.deepEqual([...draft.keys()], [...copy.keys()])
      assert.deepEqual([...draft.materialize()], [...copy])
      assert.deepEqual([...base], frozen, 'the committed table is never mutated')
    }),
  )
})

test('changedCount counts the keys a draft wrote or deleted, so an untouched draft need not be materialized', () => {
  const draft = new DraftTable(new Map([['a', 1]]))
  assert.equal(draft.changedCount, 0)
  draft.delete('missing')
  assert.equal(draft.changedCount, 0, 'deleting an absent key writes nothing')
  draft.set('a', 2)
  draft.delete('a')
  draft.set('b', 3)
  assert.equal(draft.changedCount, 2)
})

test('a draft over a committed draft shares its base, reads like a Map with both drafts\' writes, and leaves the first draft as it was', () => {
  const base = new Map([['a', 1], ['b', 2], ['c', 3]])
  const first = new DraftTable(base)
  first.set('b', 20)
  first.delete('c')
  first.set('d', 4)
  const before = [...first]
  const second = DraftTable.over(first)
  second.set('c', 30)
  second.delete('a')
  second.set('d', 40)
  const copy = new Map(base)
  copy.set('b', 20)
  copy.delete('c')
  copy.set('d', 4)
  copy.set('c', 30)
  copy.delete('a')
  copy.set('d', 40)
  assert.deepEqual([...second], [...copy])
  assert.deepEqual([...second.materialize()], [...copy])
  assert.equal(second.size, copy.size)
  assert.deepEqual([...first], before, 'the committed draft is never mutated')
  assert.deepEqual([...base], [['a', 1], ['b', 2], ['c', 3]])
})
