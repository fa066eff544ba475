import assert from 'node:assert/strict'
import { chmod, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { isMallaError } from '../../src/core/errors.js'
import { MemoryKeyStore } from '../../src/identity/key-store.js'
import { defaultKeyPath, FileKeyStore } from '../../src/node/identity/file-key-store.js'
import { tempDir } from '../helpers/processes.js'
import { keyStoreSuite } from './key-store-suite.js'

keyStoreSuite('MemoryKeyStore', async () => {
  const store = new MemoryKeyStore()
  return { store, reopen: () => store, teardown: async () => {} }
})

keyStoreSuite('FileKeyStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'malla-keystore-'))
  const path = join(dir, 'nested', 'key.asc')
  return { store: new FileKeyStore(path), reopen: () => new FileKeyStore(path), teardown: () => rm(dir, { recursive: true, force: true }) }
})

test('FileKeyStore keeps the key readable by its owner only, and leaves no temporary file', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'config', 'malla', 'key.asc')
  const store = new FileKeyStore(path)
  await store.save('secret')
  await store.save('secret 2')
  assert.equal((await stat(path)).mode & 0o777, 0o600)
  assert.equal((await stat(join(dir, 'config', 'malla'))).mode & 0o777, 0o700)
  assert.deepEqual(await readdir(join(dir, 'config', 'malla')), ['key.asc'])
})

test('FileKeyStore refuses a key file others can read, with the way out in the message', async (t) => {
  const path = join(await tempDir(t), 'key.asc')
  await writeFile(path, 'secret', { mode: 0o644 })
  await chmod(path, 0o644)
  await assert.rejects(new FileKeyStore(path).load(), (e) => isMallaError(e, 'FORBIDDEN') && /chmod 600/.test(e.message))
})

test('the default key file follows $MALLA_KEY, then $XDG_CONFIG_HOME, then ~/.config', () => {
  assert.equal(defaultKeyPath({ MALLA_KEY: '/k/a.asc', XDG_CONFIG_HOME: '/x' }), '/k/a.asc')
  assert.equal(defaultKeyPath({ XDG_CONFIG_HOME: '/x' }), '/x/malla/key.asc')
  assert.match(defaultKeyPath({}), /\/\.config\/malla\/key\.asc$/)
})
