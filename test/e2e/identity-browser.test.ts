import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { test } from 'node:test'
import type { Page } from 'playwright-core'
import { gnupg } from '../helpers/gnupg.js'
import { tempDir } from '../helpers/processes.js'
import { browserIn } from './browser.js'
import { suiteBundle } from './in-page/bundle.js'
import type { TestOutcome } from './in-page/node-test.js'

type Id = {
  fingerprint: string
  name: string
  publicKey: string
  sign(d: Uint8Array): Uint8Array
  verify(d: Uint8Array, s: Uint8Array): { valid: boolean }
  exportSecret(): string
  encrypt(text: string, to: Id): Promise<string>
  decrypt(armored: string, from: Id): Promise<{ text: string }>
  readKey(armored: string): Promise<Id>
}
type Api = {
  createIdentity(name: string): Promise<Id>
  importIdentity(armor: string, passphrase?: string): Promise<Id>
  readPublicIdentity(armor: string): Promise<Id>
  loadOrCreateIdentity(store: unknown, name: string): Promise<{ identity: Id; created: boolean }>
  IdbKeyStore: new (name?: string) => unknown
}

/**
 * Identity in a page as a router serves it: plain http:// on a name that is not localhost (thisnode.info,
 * LibreMesh's own, mapped to a loopback server), so no secure context and no `crypto.subtle`. Keys made there
 * are GnuPG's to import and verify; GnuPG's keys and signatures are the page's. Chromium runs on the host's
 * network: the page makes no WebRTC connection, and the only server it reaches is this test's, on loopback.
 */
test('identity in a page without a secure context: IndexedDB, and GnuPG both ways', { timeout: 180_000 }, async (t) => {
  const bundle = await suiteBundle('identity-page.ts')
  const server = createServer((req, res) => {
    if (req.url === '/identity.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle)
    else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>identity</title><script type="module" src="/identity.js"></script>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => server.close(resolve)))
  const url = `http://thisnode.info:${(server.address() as { port: number }).port}/`
  const context = await browserIn(t, undefined, ['--host-resolver-rules=MAP thisnode.info 127.0.0.1'])
  const open = async (): Promise<Page> => {
    const page = context.pages()[0] ?? (await context.newPage())
    page.on('pageerror', (e) => process.stderr.write(`page: uncaught ${e.message}\n`))
    await page.goto(url, { timeout: 15_000 })
    await page.waitForFunction(() => 'identity' in globalThis, undefined, { timeout: 15_000 })
    return page
  }
  let page = await open()
  assert.deepEqual(await page.evaluate(() => ({ secure: isSecureContext, subtle: typeof crypto.subtle })), { secure: false, subtle: 'undefined' })

  await t.test('the key-store conformance suite passes against IndexedDB', async (st) => {
    const outcomes = await page.evaluate(() => (globalThis as unknown as { runSuite(): Promise<TestOutcome[]> }).runSuite())
    assert.ok(outcomes.length >= 4, `${outcomes.length} tests ran in the page`)
    for (const o of outcomes) await st.test(o.name, () => assert.ok(o.ok, `${o.error}`))
  })

  const dir = await tempDir(t)
  const { gpg } = await gnupg(t)

  await t.test('a key made in the page is kept across a reload, and GnuPG verifies what it signs', async () => {
    const made = await page.evaluate(async () => {
      const api = (globalThis as unknown as { identity: Api }).identity
      const started = performance.now()
      const { identity, created } = await api.loadOrCreateIdentity(new api.IdbKeyStore(), 'Ana')
      const ms = performance.now() - started
      const data = new TextEncoder().encode('an offer to sign')
      const signStarted = performance.now()
      const sig = identity.sign(data)
      const signMs = performance.now() - signStarted
      return { fingerprint: identity.fingerprint, created, publicKey: identity.publicKey, sig: Array.from(sig), ms, signMs }
    })
    assert.equal(made.created, true)
    t.diagnostic(`in the page: key made and kept in ${made.ms.toFixed(0)} ms, first signature ${made.signMs.toFixed(1)} ms`)
    page = await open()
    const kept = await page.evaluate(async () => {
      const api = (globalThis as unknown as { identity: Api }).identity
      const { identity, created } = await api.loadOrCreateIdentity(new api.IdbKeyStore(), 'someone else')
      return { fingerprint: identity.fingerprint, created, name: identity.name }
    })
    assert.deepEqual(kept, { fingerprint: made.fingerprint, created: false, name: 'Ana' })

    assert.equal((await gpg(['--import'], made.publicKey)).code, 0)
    await writeFile(join(dir, 'offer'), 'an offer to sign')
    await writeFile(join(dir, 'offer.sig'), Uint8Array.from(made.sig))
    const good = await gpg(['--status-fd', '1', '--verify', join(dir, 'offer.sig'), join(dir, 'offer')])
    assert.match(good.stdout, new RegExp(`VALIDSIG ${made.fingerprint} `), good.stderr)
    await writeFile(join(dir, 'offer'), 'an offer to sign, changed')
    assert.match((await gpg(['--status-fd', '1', '--verify', join(dir, 'offer.sig'), join(dir, 'offer')])).stdout, /BADSIG/)
  })

  await t.test('a key made by GnuPG is imported in the page; each verifies the other\'s signatures', async () => {
    assert.equal((await gpg(['--quick-gen-key', 'Bea', 'future-default', 'default', 'never'])).code, 0)
    const fpr = /fpr:+([0-9A-F]{40}):/.exec((await gpg(['--with-colons', '--list-secret-keys', 'Bea'])).stdout)?.[1] as string
    const secret = (await gpg(['--armor', '--export-secret-keys', fpr])).stdout
    await writeFile(join(dir, 'note'), 'hola\n')
    await gpg(['--local-user', fpr, '--detach-sign', '-o', join(dir, 'note.sig'), join(dir, 'note')])
    const gpgSig = Array.from(await (await import('node:fs/promises')).readFile(join(dir, 'note.sig')))
    const inPage = await page.evaluate(
      async ({ secret, gpgSig }) => {
        const api = (globalThis as unknown as { identity: Api }).identity
        const bea = await api.importIdentity(secret)
        const note = new TextEncoder().encode('hola\n')
        return {
          fingerprint: bea.fingerprint,
          gpgSigValid: bea.verify(note, Uint8Array.from(gpgSig)).valid,
          gpgSigOnOther: bea.verify(new TextEncoder().encode('hola!\n'), Uint8Array.from(gpgSig)).valid,
          sig: Array.from(bea.sign(note)),
        }
      },
      { secret, gpgSig },
    )
    assert.equal(inPage.fingerprint, fpr)
    assert.equal(inPage.gpgSigValid, true)
    assert.equal(inPage.gpgSigOnOther, false)
    await writeFile(join(dir, 'note.page.sig'), Uint8Array.from(inPage.sig))
    const good = await gpg(['--status-fd', '1', '--verify', join(dir, 'note.page.sig'), join(dir, 'note')])
    assert.match(good.stdout, new RegExp(`VALIDSIG ${fpr} `), good.stderr)
  })

  await t.test('the page encrypts to a GnuPG key and GnuPG decrypts it, signed; and the other way', async () => {
    const bea = /fpr:+([0-9A-F]{40}):/.exec((await gpg(['--with-colons', '--list-secret-keys', 'Bea'])).stdout)?.[1] as string
    const beaPublic = (await gpg(['--armor', '--export', bea])).stdout
    const fromPage = await page.evaluate(
      async ({ beaPublic }) => {
        const api = (globalThis as unknown as { identity: Api }).identity
        const { identity } = await api.loadOrCreateIdentity(new api.IdbKeyStore(), 'Ana')
        const started = performance.now()
        const armored = await identity.encrypt('¿llegó el mensaje? 🌱', await identity.readKey(beaPublic))
        return { armored, fingerprint: identity.fingerprint, publicKey: identity.publicKey, ms: performance.now() - started }
      },
      { beaPublic },
    )
    t.diagnostic(`in the page: encrypted and signed in ${fromPage.ms.toFixed(0)} ms`)
    assert.match(fromPage.armored, /^-----BEGIN PGP MESSAGE-----/)
    const read = await gpg(['--status-fd', '2', '--decrypt'], fromPage.armored)
    assert.equal(read.code, 0, read.stderr)
    assert.equal(read.stdout, '¿llegó el mensaje? 🌱')
    assert.match(read.stderr, new RegExp(`VALIDSIG ${fromPage.fingerprint} `))

    const toPage = (await gpg(['--armor', '--trust-model', 'always', '--local-user', bea, '--recipient', fromPage.fingerprint, '--sign', '--encrypt'], 'sí, llegó\n')).stdout
    assert.match(toPage, /^-----BEGIN PGP MESSAGE-----/)
    const opened = await page.evaluate(
      async ({ toPage, beaPublic, anaPublic }) => {
        const api = (globalThis as unknown as { identity: Api }).identity
        const { identity } = await api.loadOrCreateIdentity(new api.IdbKeyStore(), 'Ana')
        const text = (await identity.decrypt(toPage, await identity.readKey(beaPublic))).text
        // Signed by someone else than who it claims: refused.
        const wrongSender = await identity.decrypt(toPage, await identity.readKey(anaPublic)).then(() => 'read', (e: Error) => e.message)
        return { text, wrongSender }
      },
      { toPage, beaPublic, anaPublic: fromPage.publicKey },
    )
    assert.equal(opened.text, 'sí, llegó\n')
    assert.match(opened.wrongSender, /cannot read the message/)
  })
})
