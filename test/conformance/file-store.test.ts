import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { isMallaError } from '../../src/core/errors.js'
import type { Flavour, TypeName } from '../../src/core/types.js'
import { FileStore } from '../../src/node/storage/file-store.js'
import type { TableRef } from '../../src/storage/table-store.js'
import { tableStoreSuite } from './table-store-suite.js'

const ref = (flavour: Flavour, type: string): TableRef => ({ flavour, type: type as TypeName })

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'malla-file-store-'))
}

tableStoreSuite('FileStore', async () => {
  const dir = await tempDir()
  return {
    store: new FileStore(dir),
    // What the CLI does while the daemon runs: another FileStore on the same directory.
    other: () => new FileStore(dir),
    addJunk: async () => {
      await mkdir(join(dir, 'multiwriter'), { recursive: true })
      await writeFile(join(dir, 'README'), 'not a table')
      await writeFile(join(dir, 'notes.txt'), '{}')
      await writeFile(join(dir, 'bad name.json'), '{}')
      await writeFile(join(dir, 'dots.in.name.json'), '{}')
      await writeFile(join(dir, '.json'), '{}')
      await writeFile(join(dir, 'alpha.json.tmp-123-abc'), '{}')
      await writeFile(join(dir, 'alpha.json.corrupt-2024-01-01T00-00-00-000Z'), '{bad')
      await mkdir(join(dir, 'stale.json.lock'))
      await writeFile(join(dir, 'multiwriter', 'x.json.tmp-9-zz'), '{}')
      await mkdir(join(dir, 'multiwriter', 'nested'))
    },
    teardown: () => rm(dir, { recursive: true, force: true }),
  }
})

/** A fresh directory removed when the test ends, whatever happened. */
async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir()
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true })
  return entries.map(String).sort()
}

describe('FileStore on disk', () => {
  it('keeps LibreMesh\'s layout: DIR/<type>.json and DIR/multiwriter/<type>.json, holding exactly the text', () =>
    withDir(async (dir) => {
      const store = new FileStore(dir)
      const ttlText = '{"hello":{"data":"world","author":"W1","bleachTTL":30}}\n'
      const mwText = '{"v":{"data":1,"author":"W1","changes":0,"fortune":5}}'
      await store.save(ref('ttl', 'bat-hosts'), ttlText)
      await store.save(ref('multiwriter', 'pirania-vouchers'), mwText)
      assert.equal(store.path(ref('ttl', 'bat-hosts')), join(dir, 'bat-hosts.json'))
      assert.equal(store.path(ref('multiwriter', 'pirania-vouchers')), join(dir, 'multiwriter', 'pirania-vouchers.json'))
      assert.equal(await readFile(join(dir, 'bat-hosts.json'), 'utf8'), ttlText)
      assert.equal(await readFile(join(dir, 'multiwriter', 'pirania-vouchers.json'), 'utf8'), mwText)
      assert.deepEqual(await filesUnder(dir), ['bat-hosts.json', 'multiwriter', join('multiwriter', 'pirania-vouchers.json')])
    }))

  it('reads a table file written by someone else (a Lua router\'s file, say)', () =>
    withDir(async (dir) => {
      const text = '{"k":{"author":"W1","bleachTTL":30}}\n'
      await writeFile(join(dir, 'demo.json'), text)
      const store = new FileStore(dir)
      const loaded = await store.load(ref('ttl', 'demo'))
      assert.equal(loaded.text, text)
      assert.equal(await store.version(ref('ttl', 'demo')), loaded.version)
      assert.deepEqual(await store.list(), [ref('ttl', 'demo')])
    }))

  it('leaves no temporary files behind, after sequential and concurrent saves', () =>
    withDir(async (dir) => {
      const store = new FileStore(dir)
      for (let i = 0; i < 10; i++) await store.save(ref('ttl', 'seq'), `{"i":${i}}`)
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => new FileStore(dir).save(ref(i % 2 ? 'ttl' : 'multiwriter', 'par'), `{"i":${i}}`)),
      )
      assert.deepEqual(await filesUnder(dir), ['multiwriter', join('multiwriter', 'par.json'), 'par.json', 'seq.json'])
      assert.equal(await readFile(join(dir, 'seq.json'), 'utf8'), '{"i":9}')
      assert.match(await readFile(join(dir, 'par.json'), 'utf8'), /^\{"i":\d+\}$/)
    }))

  it('fails a save it cannot complete with STORAGE, keeping the old state and no temporary file', () =>
    withDir(async (dir) => {
      const store = new FileStore(dir)
      // A directory where the table file should be: the final rename fails.
      await mkdir(join(dir, 'blocked.json', 'inside'), { recursive: true })
      await assert.rejects(store.save(ref('ttl', 'blocked'), '{}'), (e: unknown) => isMallaError(e, 'STORAGE'))
      assert.deepEqual(await filesUnder(dir), ['blocked.json', join('blocked.json', 'inside')])
    }))

  it('keeps what it sets aside in a file beside the table, byte for byte, named by its content', () =>
    withDir(async (dir) => {
      const store = new FileStore(dir)
      const aside = await store.setAside(ref('multiwriter', 'broken'), '{bad json', 'not JSON')
      assert.equal(await readFile(aside, 'utf8'), '{bad json')
      assert.ok(aside.startsWith(join(dir, 'multiwriter', 'broken.json.unreadable-')), aside)
      // A second process setting the same text aside finds it there: no error, no second file.
      assert.equal(await new FileStore(dir).setAside(ref('multiwriter', 'broken'), '{bad json', 'again'), aside)
      assert.deepEqual(await filesUnder(join(dir, 'multiwriter')), [aside.slice(join(dir, 'multiwriter').length + 1)])
    }))

  it('removes temp files of writers that died mid-save, and only those', () =>
    withDir(async (dir) => {
      const store = new FileStore(dir)
      await store.save(ref('ttl', 'kept'), '{}')
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString()
      await writeFile(join(dir, `kept.json.tmp-${dead}-abc123`), '{"a whole":"copy"}')
      await mkdir(join(dir, 'multiwriter'), { recursive: true })
      await writeFile(join(dir, 'multiwriter', `mw.json.journal.tmp-${dead}-x9`), 'header')
      const mine = join(dir, `kept.json.tmp-${process.pid}-live`)
      await writeFile(mine, 'a save in progress')
      const removed = await store.removeStaleTemps()
      assert.deepEqual(removed.sort(), [join(dir, `kept.json.tmp-${dead}-abc123`), join(dir, 'multiwriter', `mw.json.journal.tmp-${dead}-x9`)].sort())
      assert.deepEqual((await filesUnder(dir)).sort(), ['kept.json', `kept.json.tmp-${process.pid}-live`, 'multiwriter'].sort())
    }))

  it('takes over a lock left by a dead process within the stale time', () =>
    withDir(async (dir) => {
      const lockDir = join(dir, 'x.json.lock')
      await mkdir(lockDir)
      const old = new Date(Date.now() - 60_000)
      await utimes(lockDir, old, old)
      const store = new FileStore(dir, { staleLockMs: 2000 })
      const started = Date.now()
      const release = await store.lock(ref('ttl', 'x'))
      assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`)
      // The lock is ours now: another writer is kept out.
      await assert.rejects(new FileStore(dir, { lockWaitMs: 200 }).lock(ref('ttl', 'x')), (e: unknown) => isMallaError(e, 'LOCK_FAILED'))
      await release()
      await assert.rejects(stat(lockDir), { code: 'ENOENT' })
    }))

  it('fails with LOCK_FAILED when another store holds the lock longer than lockWaitMs, and succeeds once released', () =>
    withDir(async (dir) => {
      const holder = new FileStore(dir)
      const release = await holder.lock(ref('multiwriter', 'busy'))
      const impatient = new FileStore(dir, { lockWaitMs: 300 })
      const started = Date.now()
      await assert.rejects(impatient.lock(ref('multiwriter', 'busy')), (e: unknown) => {
        assert.ok(isMallaError(e, 'LOCK_FAILED'), String(e))
        return true
      })
      const waited = Date.now() - started
      assert.ok(waited >= 250 && waited < 3000, `waited ${waited} ms`)
      await release()
      const second = await impatient.lock(ref('multiwriter', 'busy'))
      await second()
    }))

  it('keeps a lock that is held longer than the stale time, as long as its holder lives', () =>
    withDir(async (dir) => {
      const holder = new FileStore(dir, { staleLockMs: 2000 })
      const release = await holder.lock(ref('ttl', 'slow'))
      try {
        // The waiter gives up after 2.6 s: past the stale time, so it would steal a lock that is not refreshed.
        const waiter = new FileStore(dir, { staleLockMs: 2000, lockWaitMs: 2600 })
        await assert.rejects(waiter.lock(ref('ttl', 'slow')), (e: unknown) => isMallaError(e, 'LOCK_FAILED'))
      } finally {
        await release()
      }
    }))
})
