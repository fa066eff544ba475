import assert from 'node:assert/strict'
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { TypeName } from '../../src/core/types.js'
import { FileStore } from '../../src/node/storage/file-store.js'
import { Replica } from '../../src/replica/replica.js'
import type { TableRef } from '../../src/storage/table-store.js'

const REF: TableRef = { flavour: 'ttl', type: 'hosts' as TypeName }

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'malla-journal-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

describe('FileStore journal', () => {
  it('appends records durably, returns them on load in order, and drops them with the next whole save', () =>
    withDir(async (dir) => {
      const store = new FileStore(dir)
      await store.save(REF, '{}')
      const v1 = await store.append!(REF, '{"set":{},"del":["a"]}')
      const v2 = await store.append!(REF, '{"set":{},"del":["b"]}')
      assert.notEqual(v1.version, v2.version)
      assert.equal(await store.version(REF), v2.version)
      const loaded = await new FileStore(dir).load(REF)
      assert.deepEqual(loaded.journal, ['{"set":{},"del":["a"]}', '{"set":{},"del":["b"]}'])
      assert.equal(loaded.version, v2.version)
      await store.save(REF, '{"x":1}')
      assert.deepEqual(await store.load(REF), { text: '{"x":1}', version: await store.version(REF) })
    }))

  it('ignores a journal left from an older base (a save that crashed before removing it) and a torn last record', () =>
    withDir(async (dir) => {
      const store = new FileStore(dir)
      await store.save(REF, '{}')
      await store.append!(REF, '{"set":{},"del":["old"]}')
      const journal = await readFile(join(dir, 'hosts.json.journal'), 'utf8')
      await store.save(REF, '{"new":1}')
      await writeFile(join(dir, 'hosts.json.journal'), journal) // as if the unlink never happened
      assert.equal((await store.load(REF)).journal, undefined)
      // Appending now starts a fresh journal for the current base instead of extending the stale one.
      await store.append!(REF, '{"set":{},"del":["fresh"]}')
      assert.deepEqual((await store.load(REF)).journal, ['{"set":{},"del":["fresh"]}'])
      // A record cut short by a crash is not returned, and the next append starts on a line of its own.
      await appendFile(join(dir, 'hosts.json.journal'), '{"set":{"half')
      assert.deepEqual((await store.load(REF)).journal, ['{"set":{},"del":["fresh"]}'])
      await store.append!(REF, '{"set":{},"del":["after"]}')
      assert.deepEqual((await store.load(REF)).journal, ['{"set":{},"del":["fresh"]}', '{"set":{},"del":["after"]}'])
    }))

  it('lists a table that so far exists only as a journal', () =>
    withDir(async (dir) => {
      const store = new FileStore(dir)
      await store.append!(REF, '{"set":{},"del":[]}')
      assert.deepEqual(await store.list(), [REF])
    }))

  it('without a journal (the CLI), every write leaves the whole table in the file', () =>
    withDir(async (dir) => {
      const store = new FileStore(dir, { journal: false })
      assert.equal(store.append, undefined)
      const replica = new Replica({ store, author: 'cli' })
      await replica.insert(REF.type, [['k', 1]])
      assert.deepEqual(Object.keys(JSON.parse(await readFile(join(dir, 'hosts.json'), 'utf8'))), ['k'])
    }))
})

describe('Replica over a journaling FileStore', () => {
  it('journals small changes to a large table, reads them back anywhere, and compacts them into the file', () =>
    withDir(async (dir) => {
      const replica = new Replica({ store: new FileStore(dir), author: 'A' })
      await replica.insert(REF.type, Array.from({ length: 1000 }, (_, i) => [`host-${i}`, i] as [string, number]))
      const fileAfterBulk = await readFile(join(dir, 'hosts.json'), 'utf8')
      assert.equal(Object.keys(JSON.parse(fileAfterBulk)).length, 1000, 'a bulk write rewrites the file')
      await replica.insert(REF.type, [['new', 'small']])
      await replica.remove(REF.type, ['host-1'])
      assert.equal(await readFile(join(dir, 'hosts.json'), 'utf8'), fileAfterBulk, 'small changes leave the file alone')
      assert.equal((await readFile(join(dir, 'hosts.json.journal'), 'utf8')).trim().split('\n').length, 3, 'header and two records')
      // Another process (a second replica on the same files) sees everything.
      const other = new Replica({ store: new FileStore(dir), author: 'B' })
      const seen = (await other.get(REF.type)).table
      assert.equal(seen.get('new')?.data, 'small')
      assert.equal(seen.get('host-1')?.data, null)
      assert.equal(seen.size, 1001)
      await replica.compact(REF)
      const file = JSON.parse(await readFile(join(dir, 'hosts.json'), 'utf8'))
      assert.equal(file.new.data, 'small')
      assert.equal(file['host-1'].data, null)
      await assert.rejects(readFile(join(dir, 'hosts.json.journal')), 'journal gone after compaction')
    }))
})
