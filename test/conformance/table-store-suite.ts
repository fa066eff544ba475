import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Flavour, TypeName } from '../../src/core/types.js'
import { refKey, type TableRef, type TableStore } from '../../src/storage/table-store.js'

/** What an adapter's test gives the suite: a fresh, empty store per test. */
export interface TableStoreFixture {
  readonly store: TableStore
  /**
   * A second handle on the same backing storage, as another process would open it (a second FileStore on
   * the same directory, say). Adapters with nothing to share return `store` itself.
   */
  readonly other?: () => TableStore
  /** Leaves files or records in the backing storage that are not tables, to check that `list` skips them. */
  readonly addJunk?: () => Promise<void>
  readonly teardown: () => Promise<void>
}

const ref = (flavour: Flavour, type: string): TableRef => ({ flavour, type: type as TypeName })
const byKey = (refs: readonly TableRef[]): string[] => refs.map(refKey).sort()

/** Fails with a clear message instead of hanging when `promise` does not settle in time. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The behaviour every `TableStore` adapter must have; each adapter's test file calls this with its own setup.
 * Waiting is only used where a lock must be shown *not* to be granted: no timing decides a passing result.
 */
export function tableStoreSuite(name: string, setup: () => Promise<TableStoreFixture>): void {
  async function withStore(fn: (f: TableStoreFixture & { other: () => TableStore }) => Promise<void>): Promise<void> {
    const fixture = await setup()
    const opened: TableStore[] = []
    const other = (): TableStore => {
      const s = fixture.other?.() ?? fixture.store
      opened.push(s)
      return s
    }
    try {
      await fn({ ...fixture, other })
    } finally {
      for (const s of new Set([fixture.store, ...opened])) await s.close?.()
      await fixture.teardown()
    }
  }

  describe(`TableStore conformance: ${name}`, () => {
    describe('load and save', () => {
      it('loads a table never saved as no text with version "absent"', () =>
        withStore(async ({ store }) => {
          for (const flavour of ['ttl', 'multiwriter'] as const) {
            assert.deepEqual(await store.load(ref(flavour, 'nothing')), { text: undefined, version: 'absent' })
            assert.equal(await store.version(ref(flavour, 'nothing')), 'absent')
          }
        }))

      it('returns exactly the text saved, for both flavours, kept apart', () =>
        withStore(async ({ store }) => {
          const ttlText = '{"k":{"data":"v","author":"A","bleachTTL":30}}'
          const mwText = '{"k":{"data":"w","author":"B","changes":0,"fortune":7}}'
          await store.save(ref('ttl', 'same-name'), ttlText)
          await store.save(ref('multiwriter', 'same-name'), mwText)
          assert.equal((await store.load(ref('ttl', 'same-name'))).text, ttlText)
          assert.equal((await store.load(ref('multiwriter', 'same-name'))).text, mwText)
        }))

      it('keeps unicode and control characters exactly', () =>
        withStore(async ({ store }) => {
          const text = JSON.stringify({ 'ñandú 🐧': { data: 'Ω≈ç√ \u2028\u2029 \u0000 \t\r\n "\\" 中文 🇦🇷', author: 'é', bleachTTL: 3 } })
          await store.save(ref('ttl', 'unicode'), text)
          assert.equal((await store.load(ref('ttl', 'unicode'))).text, text)
        }))

      it('keeps a 1 MB table exactly', () =>
        withStore(async ({ store }) => {
          const parts: string[] = []
          for (let i = 0, size = 0; size < 1_048_576; i++) {
            const part = `${JSON.stringify(`host-${i}`)}:${JSON.stringify({ data: `fd00::${i.toString(16)} nodo-${i} ñ`, author: `LiMe-${i % 97}`, bleachTTL: 30 })}`
            parts.push(part)
            size += part.length + 1
          }
          const text = `{${parts.join(',')}}`
          assert.ok(text.length >= 1_048_576)
          await store.save(ref('ttl', 'big'), text)
          const loaded = await store.load(ref('ttl', 'big'))
          assert.equal(loaded.text?.length, text.length)
          assert.equal(loaded.text, text)
        }))

      it('replaces the previous text on every save', () =>
        withStore(async ({ store }) => {
          const r = ref('ttl', 'replace')
          await store.save(r, 'a much longer first version of the text')
          await store.save(r, '{}')
          assert.equal((await store.load(r)).text, '{}')
        }))
    })

    describe('tables kept as they are (stores with keep)', () => {
      it('loads a kept table as its text, versions it like a save, and a save after it replaces it', () =>
        withStore(async ({ store }) => {
          if (!store.keep) return assert.equal(store.keep, undefined, 'a store without keep: nothing to check')
          const r = ref('ttl', 'kept')
          const before = await store.version(r)
          const table = new Map([['k', { data: 'ü "q"', author: 'a', bleachTTL: 3 }]])
          const v = await store.keep(r, table)
          assert.notEqual(v, before)
          assert.equal(await store.version(r), v)
          const loaded = await store.load(r)
          assert.equal(loaded.version, v)
          assert.deepEqual(JSON.parse(loaded.text ?? 'null'), { k: { data: 'ü "q"', author: 'a', bleachTTL: 3 } })
          assert.deepEqual(byKey(await store.list()), ['ttl/kept'])
          const v2 = await store.keep(r, new Map())
          assert.notEqual(v2, v)
          assert.equal((await store.load(r)).text, '{}')
          await store.save(r, '{"s":1}')
          assert.equal((await store.load(r)).text, '{"s":1}')
        }))
    })

    describe('versions', () => {
      it('returns from save the version that load and version then report, stable while nothing is saved', () =>
        withStore(async ({ store }) => {
          const r = ref('ttl', 'versioned')
          const v = await store.save(r, '{"a":1}')
          assert.notEqual(v, 'absent')
          assert.equal(await store.version(r), v)
          assert.equal(await store.version(r), v)
          assert.equal((await store.load(r)).version, v)
          assert.equal((await store.load(r)).version, v)
          // Another table's save leaves this one's version alone.
          await store.save(ref('ttl', 'unrelated'), '{"b":2}')
          await store.save(ref('multiwriter', 'versioned'), '{"c":3}')
          assert.equal(await store.version(r), v)
        }))

      it('changes the version on every save, even of the same text', () =>
        withStore(async ({ store }) => {
          const r = ref('multiwriter', 'resaved')
          let previous = await store.version(r)
          for (let i = 0; i < 20; i++) {
            const v = await store.save(r, '{"same":true}')
            assert.notEqual(v, previous, `save ${i} kept version ${v}`)
            assert.equal(await store.version(r), v)
            previous = v
          }
        }))

      it('never reuses a version for a different text', () =>
        withStore(async ({ store }) => {
          const r = ref('ttl', 'texts')
          const seen = new Map<string, string>()
          for (let i = 0; i < 30; i++) {
            // Same length every time: a version made of size and time alone would collide.
            const text = `{"n":${String(i % 10)}}`
            const v = await store.save(r, text)
            const earlier = seen.get(v)
            assert.ok(earlier === undefined || earlier === text, `version ${v} was used for ${earlier} and ${text}`)
            seen.set(v, text)
          }
        }))

      it('shows a save made through another handle on the same storage', () =>
        withStore(async ({ store, other }) => {
          const r = ref('ttl', 'shared')
          const mine = await store.save(r, '{"from":"store"}')
          const theirs = await other().save(r, '{"from":"other"}')
          assert.notEqual(theirs, mine)
          assert.equal(await store.version(r), theirs)
          assert.deepEqual(await store.load(r), { text: '{"from":"other"}', version: theirs })
          // And the other way round, for a table the first handle has never seen.
          const fresh = ref('multiwriter', 'fresh')
          assert.equal(await other().version(fresh), 'absent')
          const v = await store.save(fresh, '[]')
          assert.deepEqual(await other().load(fresh), { text: '[]', version: v })
        }))
    })

    describe('list', () => {
      it('lists nothing in an empty store', () =>
        withStore(async ({ store }) => {
          assert.deepEqual(await store.list(), [])
        }))

      it('lists exactly the saved tables of both flavours, each once, and skips what is not a table', () =>
        withStore(async ({ store, other, addJunk }) => {
          await store.save(ref('ttl', 'alpha'), '{}')
          await store.save(ref('ttl', 'beta_2'), '{}')
          await store.save(ref('ttl', 'beta_2'), '{"again":1}')
          await store.save(ref('multiwriter', 'alpha'), '{}')
          await other().save(ref('multiwriter', 'Gamma-3'), '{}')
          await addJunk?.()
          // A table that is only locked, never saved, is not a table yet.
          const release = await store.lock(ref('ttl', 'locked-only'))
          try {
            // What a store keeps aside is not a table.
            await store.setAside(ref('ttl', 'aside-only'), '{bad', 'test')
            const listed = await store.list()
            assert.deepEqual(byKey(listed), ['multiwriter/Gamma-3', 'multiwriter/alpha', 'ttl/alpha', 'ttl/beta_2'])
            for (const r of listed) assert.deepEqual(Object.keys(r).sort(), ['flavour', 'type'])
            assert.deepEqual(byKey(await other().list()), byKey(listed))
          } finally {
            await release()
          }
        }))
    })

    describe('lock', () => {
      it('lets one holder at a time into a table, across handles', () =>
        withStore(async ({ store, other }) => {
          const r = ref('ttl', 'contended')
          const log: string[] = []
          const handles = [store, other(), store, other()]
          await Promise.all(
            handles.map(async (handle, i) => {
              const release = await handle.lock(r)
              log.push(`in ${i}`)
              // Work that yields to the event loop while holding the lock: any other holder would interleave here.
              await handle.save(r, JSON.stringify({ holder: i }))
              await sleep(20)
              assert.equal((await handle.load(r)).text, JSON.stringify({ holder: i }))
              log.push(`out ${i}`)
              await release()
            }),
          )
          assert.equal(log.length, 8)
          for (let k = 0; k < log.length; k += 2) {
            const holder = (log[k] as string).slice(3)
            assert.deepEqual([log[k], log[k + 1]], [`in ${holder}`, `out ${holder}`], log.join(', '))
          }
          assert.equal(new Set(log).size, 8)
        }))

      it('grants a waiting lock only after the holder releases it', () =>
        withStore(async ({ store, other }) => {
          const r = ref('multiwriter', 'held')
          const log: string[] = []
          const release = await store.lock(r)
          const waiting = other()
            .lock(r)
            .then((releaseSecond) => {
              log.push('second acquired')
              return releaseSecond
            })
          // Give the waiter several chances (a file lock retries every 100 ms) to get in wrongly.
          await sleep(350)
          log.push('first releasing')
          await release()
          const releaseSecond = await within(5000, 'the waiting lock', waiting)
          assert.deepEqual(log, ['first releasing', 'second acquired'])
          await releaseSecond()
        }))

      it('locks different tables, and the two flavours of one name, independently', () =>
        withStore(async ({ store, other }) => {
          const release = await store.lock(ref('ttl', 'one'))
          try {
            const releases = await within(2000, 'locks on other tables', Promise.all([
              store.lock(ref('ttl', 'two')),
              other().lock(ref('ttl', 'three')),
              store.lock(ref('multiwriter', 'one')),
            ]))
            for (const r of releases) await r()
          } finally {
            await release()
          }
        }))

      it('can be taken again right after release, by either handle', () =>
        withStore(async ({ store, other }) => {
          const r = ref('ttl', 'again')
          for (const handle of [store, store, other(), store]) {
            const release = await within(2000, 'a released lock', handle.lock(r))
            await release()
          }
        }))
    })

    describe('setAside', () => {
      it('keeps the text apart from the table, and the same text once', () =>
        withStore(async ({ store }) => {
          const r = ref('ttl', 'partly')
          const before = await store.save(r, '{"fine":1}')
          const name = await store.setAside(r, '{"bad":5}\n', 'entry "bad": wrong shape')
          assert.equal(typeof name, 'string')
          assert.ok(name.length > 0)
          assert.deepEqual(await store.load(r), { text: '{"fine":1}', version: before })
          assert.equal(await store.version(r), before)
          assert.equal(await store.setAside(r, '{"bad":5}\n', 'again'), name)
          assert.notEqual(await store.setAside(r, '{"other":5}\n', 'another'), name)
        }))

      it('leaves other tables alone and the table can be saved again', () =>
        withStore(async ({ store, other }) => {
          const r = ref('multiwriter', 'partly')
          await store.save(r, '{bad')
          await store.save(ref('ttl', 'partly'), '{"fine":1}')
          await store.setAside(r, '{bad', 'test')
          assert.equal((await store.load(ref('ttl', 'partly'))).text, '{"fine":1}')
          const v = await store.save(r, '{"ok":1}')
          assert.deepEqual(await other().load(r), { text: '{"ok":1}', version: v })
        }))
    })
  })
}
