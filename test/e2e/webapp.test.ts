import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import type { Page } from 'playwright-core'
import { spawn } from 'node:child_process'
import { runCli } from '../helpers/processes.js'
import { needsRoot, watch } from '../integration/netns-helpers.js'
import { errorsOf, idOf, openApp, overview, reopenApp, screenshots, show } from './app-page.js'
import { browserIn } from './browser.js'
import { FIXTURES, lab } from './lab.js'

const MB = 1024 * 1024

/** The part of the public Room that the hostile page uses. */
type HostileRoom = {
  id: string
  tables: Map<string, string>
  send(to: string, body: unknown): Promise<void>
  replica: { insert(type: string, values: Array<[string, unknown]>, ttl: number): Promise<unknown> }
  connect(id: string): Promise<{ fileChannel: { send(d: string | Uint8Array): void; on(e: string, l: (m: unknown) => void): () => void } }>
  privateMessages: { seal(to: string, text: string): Promise<string>; post(to: string, id: string, text: string): Promise<void> }
  presence: { view(): Promise<Array<{ id: string; fingerprint?: string }>> }
}

/** The session the app exposes for tests and for people poking at it in the console. */
type Win = { mallaSession: { room: { id: string }; people: { list: { value: Array<{ id: string; present: boolean; name: string }> } } } }

async function seesEveryone(page: Page, ids: readonly string[], timeoutMs = 60_000): Promise<void> {
  await page.waitForFunction(
    (ids) => {
      const list = (globalThis as unknown as Win).mallaSession.people.list.value
      return ids.every((id) => list.some((p) => p.id === id && p.present))
    },
    ids,
    { timeout: timeoutMs, polling: 200 },
  )
}

test('the web app: three people on two routers set names, see each other, chat, message and send files', { timeout: Number(process.env.E2E_TIMEOUT ?? 400_000) }, async (t) => {
  if (!needsRoot(t)) return
  const { urls, ns } = await lab(t, 2)
  const [r1, r2] = urls as [string, string]
  const [ns1, ns2] = ns as [string, string]
  const r1Address = new URL(r1).hostname
  // Ana reaches her router by name, as LibreMesh users do: plain http://, not a secure context.
  const [bAna, bBea, bCaro] = await Promise.all([browserIn(t, ns1, [`--host-resolver-rules=MAP thisnode.info ${r1Address}`]), browserIn(t, ns1), browserIn(t, ns2)])
  const files = await mkdtemp(join(tmpdir(), 'malla-webapp-'))
  t.after(() => rm(files, { recursive: true, force: true }))

  let ana = await openApp(bAna, 'http://thisnode.info:8080/', 'Ana')
  const bea = await openApp(bBea, `${r1}/`, 'Bea')
  const caro = await openApp(bCaro, `${r2}/`, 'Caro')
  const [idAna, idBea, idCaro] = await Promise.all([idOf(ana), idOf(bea), idOf(caro)])
  const everyone = [idAna, idBea, idCaro]

  await t.test('each sees the other two, by name, with their router', async () => {
    assert.equal(await ana.evaluate(() => isSecureContext), false)
    await Promise.all([ana, bea, caro].map((p) => seesEveryone(p, everyone)))
    await show(ana, 'people')
    await ana.waitForSelector(`.person[data-peer="${idCaro}"] .person-name:has-text("Caro")`)
    assert.match(await ana.textContent(`.person[data-peer="${idCaro}"] .meta`) ?? '', /behind r2/)
    assert.match(await ana.textContent(`.person[data-peer="${idBea}"] .meta`) ?? '', /behind r1/)
    // The page that is not a secure context says what that costs.
    assert.match((await ana.textContent('.notices')) ?? '', /Plain http:\/\//)
  })

  await t.test('each has a key; Ana compares Caro\'s fingerprint with what Caro\'s screen shows and marks her verified', async () => {
    const caroFingerprint = (await caro.textContent('[data-testid=my-fingerprint] code'))?.replace(/\s/g, '') as string
    assert.match(caroFingerprint, /^[0-9A-F]{40}$/)
    // Ana sees Caro's key through Caro's signed presence: the short code is the fingerprint's start.
    const row = `.person[data-peer="${idCaro}"]`
    assert.equal(await ana.getAttribute(row, 'data-fingerprint'), caroFingerprint)
    assert.match((await ana.textContent(`${row} .meta.code`)) ?? '', new RegExp(caroFingerprint.slice(0, 4)))
    await ana.click(`${row} [data-testid=verify]`)
    assert.equal((await ana.textContent(`${row} [data-testid=their-fingerprint]`))?.replace(/\s/g, ''), caroFingerprint)
    await screenshots(ana, 'people-verify')
    await ana.click(`${row} [data-testid=mark-verified]`)
    await ana.waitForSelector(`${row} [data-testid=verified]`)
    // Kept in the browser: still verified after a reload (checked with the away message, below, when Ana comes back).
    assert.equal(await ana.$(`.person[data-peer="${idBea}"] [data-testid=verified]`), null)
    // A connection that failed its fingerprint check (the mesh's 'certificate-mismatch', counted by the session)
    // is said plainly, above everything, and cannot be closed away.
    assert.equal(await bea.$('[data-testid=mismatch]'), null)
    await bea.evaluate(() => ((globalThis as unknown as { mallaSession: { mismatches: { value: number } } }).mallaSession.mismatches.value = 1))
    assert.match((await bea.textContent('[data-testid=mismatch]')) ?? '', /someone between you and 1 other page/)
    assert.equal(await bea.$('[data-testid=mismatch] .close'), null)
    await screenshots(bea, 'warning-mismatch')
    await bea.evaluate(() => ((globalThis as unknown as { mallaSession: { mismatches: { value: number } } }).mallaSession.mismatches.value = 0))
  })

  await t.test('a chat line reaches a page behind the other router, and is marked as reaching everyone', async () => {
    await show(ana, 'chat')
    await ana.fill('input[name=chat]', 'hola a todos')
    await ana.press('input[name=chat]', 'Enter')
    await caro.waitForFunction(() => document.querySelector('.tab[data-view=chat] .badge')?.textContent === '1', undefined, { timeout: 20_000 })
    await show(caro, 'chat')
    await caro.waitForSelector('.line-text:has-text("hola a todos")', { timeout: 20_000 })
    await show(bea, 'chat')
    await bea.waitForSelector('.line-text:has-text("hola a todos")', { timeout: 20_000 })
    await ana.waitForSelector('.line.mine .mark[data-reached=true]', { timeout: 20_000 })
    await caro.fill('input[name=chat]', '¡hola Ana!')
    await caro.press('input[name=chat]', 'Enter')
    await ana.waitForSelector('.line-text:has-text("¡hola Ana!")', { timeout: 20_000 })
    await screenshots(ana, 'chat-first-lines')
  })

  await t.test('a direct message reaches only its person', async () => {
    await show(bea, 'people')
    await bea.click(`.person[data-peer="${idCaro}"] .actions button:first-child`)
    await bea.waitForSelector('main.view[data-view=messages]')
    await bea.fill('input[name=dm]', 'solo para vos')
    await bea.press('input[name=dm]', 'Enter')
    await bea.waitForSelector('.line.mine .mark.delivered', { timeout: 20_000 })
    await caro.waitForFunction(() => document.querySelector('.tab[data-view=messages] .badge')?.textContent === '1', undefined, { timeout: 20_000 })
    await show(caro, 'messages')
    await caro.click(`.contact[data-peer="${idBea}"]`)
    await caro.waitForSelector('.line-text:has-text("solo para vos")')
    await show(ana, 'messages')
    assert.equal(await ana.$('.line-text:has-text("solo para vos")'), null)
  })

  await t.test('a 20 MB file arrives whole: progress to 100%, SHA-256 checked, saved bytes identical', async () => {
    const bytes = randomBytes(20 * MB)
    const path = join(files, 'mapa.bin')
    await writeFile(path, bytes)
    await show(ana, 'files')
    await ana.selectOption('select[name=to]', idCaro)
    await ana.setInputFiles('input[type=file]', path)
    await ana.click('.transfer-form button[type=submit]')
    await show(caro, 'files')
    await caro.waitForSelector('.transfer[data-direction=in][data-state=offered]', { timeout: 30_000 })
    await screenshots(caro, 'files-offer')
    await caro.click('.transfer[data-state=offered] [data-action=accept]')
    await caro.waitForSelector('.transfer[data-direction=in][data-state=active]', { timeout: 20_000 })
    await screenshots(caro, 'files-progress')
    await caro.waitForSelector('.transfer[data-direction=in][data-state=done]', { timeout: 120_000 })
    await ana.waitForSelector('.transfer[data-direction=out][data-state=done]', { timeout: 20_000 })
    const progress = await caro.$eval('.transfer[data-direction=in][data-state=done] progress', (p) => [(p as HTMLProgressElement).value, (p as HTMLProgressElement).max])
    assert.deepEqual(progress, [bytes.length, bytes.length], 'progress reached 100%')
    assert.match((await caro.textContent('.transfer[data-state=done] .state')) ?? '', /SHA-256 checked/)
    const [download] = await Promise.all([caro.waitForEvent('download'), caro.click('.transfer[data-state=done] [data-action=save]')])
    const saved = await readFile((await download.path()) as string)
    assert.equal(saved.length, bytes.length)
    assert.equal(createHash('sha256').update(saved).digest('hex'), createHash('sha256').update(bytes).digest('hex'))
    assert.equal(download.suggestedFilename(), 'mapa.bin')
  })

  await t.test('the receiver cancels a second transfer midway; both sides stop', async () => {
    const path = join(files, 'grande.bin')
    await writeFile(path, randomBytes(200 * MB))
    await ana.setInputFiles('input[type=file]', path)
    await ana.click('.transfer-form button[type=submit]')
    await caro.waitForSelector('.transfer[data-direction=in][data-state=offered]', { timeout: 30_000 })
    await caro.click('.transfer[data-state=offered] [data-action=accept]')
    await caro.waitForFunction(() => {
      const p = document.querySelector('.transfer[data-direction=in][data-state=active] progress') as HTMLProgressElement | null
      return p !== null && p.value > 0 && p.value < p.max
    }, undefined, { timeout: 30_000, polling: 50 })
    await caro.click('.transfer[data-direction=in][data-state=active] [data-action=cancel]')
    await caro.waitForSelector('.transfer[data-direction=in][data-state=cancelled]', { timeout: 10_000 })
    await ana.waitForSelector('.transfer[data-direction=out][data-state=cancelled]', { timeout: 10_000 })
  })

  await t.test('the static build on a plain LibreMesh router (its Lua CGI, no malla daemon anywhere) lets two pages chat', async () => {
    const www = join(files, 'www')
    const built = await runCli(['build-static', www])
    assert.equal(built.code, 0, built.stderr)
    const lua = watch(spawn('ip', ['netns', 'exec', ns1, process.execPath, '--import', 'tsx', join(FIXTURES, 'lua-router.ts'), r1Address, '8081', www], { stdio: ['ignore', 'pipe', 'pipe'] }))
    t.after(async () => {
      lua.child.kill('SIGTERM')
      await lua.exited(5000)
    })
    const luaUrl = (await lua.waitFor(/^listening /, 20_000)).split(' ')[1] as string
    const [p1, p2] = [await openApp(bAna, `${luaUrl}/`, 'Ana'), await openApp(bBea, `${luaUrl}/`, 'Bea')]
    await p1.waitForSelector('.notices :text("Plain LibreMesh router")')
    await Promise.all([seesEveryone(p1, [await idOf(p1), await idOf(p2)]), seesEveryone(p2, [await idOf(p1), await idOf(p2)])])
    await show(p1, 'chat')
    await p1.fill('input[name=chat]', 'desde un router LibreMesh')
    await p1.press('input[name=chat]', 'Enter')
    await show(p2, 'chat')
    await p2.waitForSelector('.line-text:has-text("desde un router LibreMesh")', { timeout: 30_000 })
    await screenshots(p2, 'chat-libremesh')
    await Promise.all([p1.close(), p2.close()])
  })

  await t.test('a hostile peer (malformed messages, a chat flood, a file that lies about its size) cannot freeze or break the others\' pages', async () => {
    // Bea turns hostile, with nothing but the public API of the page she was given.
    const sent = await bea.evaluate(async (caroId) => {
      const s = (globalThis as unknown as { mallaSession: { room: HostileRoom } }).mallaSession
      const room = s.room
      let delivered = 0
      const caroKey = (await room.presence.view()).find((p) => p.id === caroId)?.fingerprint as string
      // Messages in clear from someone with a key, sealed garbage, and at last one sealed as it should be.
      const bodies: unknown[] = [null, 42, 'text', [1, 2], { t: 'dm' }, { t: 'dm', id: {}, x: 5 }, { t: 'seen', k: 'nope' }, { t: 'seen', k: Array.from({ length: 5000 }, (_, i) => `x${i}`) }, { t: 'dm', id: 'big', x: 'A'.repeat(60_000) }, { t: 'dm', id: 'clear', x: 'in clear, in my name' }, { t: 'dm', id: 'junk', e: '-----BEGIN PGP MESSAGE-----\n\nwcBMA0/garbage\n-----END PGP MESSAGE-----' }, { t: 'dm', id: 'huge', e: 'B'.repeat(63_000) }, { t: 'dm', id: 'ok', e: await room.privateMessages.seal(caroKey, 'still here') }]
      for (const b of bodies) await room.send(caroId, b as never).then(() => delivered++, () => {})
      // Messages left for her in the room's mail table, more than one sender may leave.
      let left = 0
      for (let i = 0; i < 20; i++) await room.privateMessages.post(caroKey, `flood${i}`, `mail flood ${i}`).then(() => left++, () => {})
      // Acknowledgements of lines Caro never wrote, under keys that look like hers.
      for (let m = 0; m < 20; m++) await room.send(caroId, { t: 'seen', k: Array.from({ length: 64 }, (_, i) => `${caroId}.fake.${m * 64 + i}`) } as never).catch(() => {})
      // The chat table: 2,000 lines in a burst, lines claiming to be Caro's, a line dated far in the future, junk entries.
      const chat = room.tables.get('chat') as string
      for (let batch = 0; batch < 20; batch++) {
        await room.replica.insert(chat, Array.from({ length: 100 }, (_, i) => [`${room.id}.flood.${batch * 100 + i}`, { x: `flood ${batch * 100 + i} ${'z'.repeat(150)}`, n: 'Bea', at: Date.now() }]), 30)
      }
      await room.replica.insert(chat, [[`${caroId}.fake.1`, { x: 'I am Caro (not)', n: 'Caro', at: Date.now() }], [`${room.id}.future`, { x: 'from the future', n: 'Bea', at: 1e15 }], [`${room.id}.junk1`, 'not an object'], [`${room.id}.junk2`, { x: 7 }], [`${room.id}.junk3`, null]], 30)
      // A file offer that says 1 KB, then 640 KB of data for it.
      const peer = await room.connect(caroId)
      const ch = peer.fileChannel
      const accepted = new Promise<void>((resolve) => {
        const off = ch.on('message', (m: unknown) => {
          if (typeof m === 'string' && m.includes('"accept"') && m.includes('4242')) (off(), resolve())
        })
      })
      ch.send(JSON.stringify({ t: 'offer', id: 4242, name: 'small.txt', size: 1000, mime: 'text/plain' }))
      ;(globalThis as unknown as { __lie: Promise<void> }).__lie = accepted.then(() => {
        const frame = new Uint8Array(64 * 1024)
        frame.set([0, 0, 0x10, 0x92])
        for (let i = 0; i < 10; i++) ch.send(frame)
        // And garbage control frames.
        for (const g of ['{', '{"t":"offer"}', '{"t":"done","id":4242,"sha256":"00"}', 'x'.repeat(10_000)]) ch.send(g)
      })
      return { delivered, left }
    }, idCaro)
    assert.ok(sent.delivered >= 1, 'the routed messages were delivered (and ignored where malformed)')
    assert.equal(sent.left, 16, 'a sender leaves at most 16 messages waiting')
    await show(caro, 'files')
    await caro.waitForSelector('.transfer[data-state=offered]:has-text("small.txt")', { timeout: 20_000 })
    await caro.click('.transfer[data-state=offered]:has-text("small.txt") [data-action=accept]')
    await caro.waitForSelector('.transfer[data-state=failed]:has-text("small.txt")', { timeout: 20_000 })
    assert.match((await caro.textContent('.transfer[data-state=failed]:has-text("small.txt") .state')) ?? '', /size-exceeded/)

    // Caro's page still answers at once, shows a bounded chat, and nobody spoke in her name.
    await show(caro, 'chat')
    await caro.waitForSelector('.line-text:has-text("flood 1999")', { timeout: 30_000 })
    const started = Date.now()
    await caro.evaluate(() => document.querySelectorAll('.line').length)
    assert.ok(Date.now() - started < 2000, `the page answered in ${Date.now() - started} ms`)
    const lines = await caro.$$eval('.line', (ls) => ls.map((l) => ({ who: l.querySelector('strong')?.textContent ?? '', text: l.querySelector('.line-text')?.textContent ?? '' })))
    assert.ok(lines.length <= 200, `${lines.length} lines drawn`)
    assert.match((await caro.textContent('.lines .more')) ?? '', /earlier lines not shown/)
    assert.ok(!lines.some((l) => l.text === 'I am Caro (not)'), 'a line whose key names another author is not shown')
    const acked = await caro.evaluate(() => {
      const chat = (globalThis as unknown as { mallaSession: { chat: { acks: { value: ReadonlyMap<string, unknown> }; lines: { value: ReadonlyArray<{ key: string; mine: boolean }> } } } }).mallaSession.chat
      return { keys: [...chat.acks.value.keys()], mine: chat.lines.value.filter((l) => l.mine).map((l) => l.key) }
    })
    assert.ok(acked.keys.every((k) => acked.mine.includes(k)), `acknowledgements kept only for Caro's own lines: ${acked.keys.length} keys`)
    // Life goes on: Ana's next line arrives and is drawn.
    await show(ana, 'chat')
    await ana.fill('input[name=chat]', 'después del diluvio')
    await ana.press('input[name=chat]', 'Enter')
    await caro.waitForSelector('.line-text:has-text("después del diluvio")', { timeout: 30_000 })
    assert.equal(await caro.$eval('.line:last-child .line-text', (l) => l.textContent), 'después del diluvio', 'a line dated in the future is not pinned last')
    await show(caro, 'messages')
    await caro.click(`.contact[data-peer="${idBea}"]`)
    await caro.waitForSelector('.line-text:has-text("still here")')
    await caro.waitForSelector('.line-text:has-text("mail flood 15")', { timeout: 20_000 })
    const dms = await caro.$$eval('.line-text', (ls) => ls.map((l) => l.textContent ?? ''))
    assert.ok(!dms.includes('in clear, in my name'), 'a message in clear under the id of someone with a key is not shown')
    assert.equal(dms.filter((d) => d.startsWith('mail flood')).length, 16)
    for (const p of [ana, bea, caro]) assert.deepEqual(errorsOf(p), [], 'no page threw')
  })

  await t.test('a message to someone away waits for them, encrypted, and reaches them when they come back', async () => {
    await show(caro, 'messages')
    await caro.click(`.contact[data-peer="${idAna}"]`).catch(async () => {
      await show(caro, 'people')
      await caro.click(`.person[data-peer="${idAna}"] .actions button:first-child`)
    })
    // Ana closes her tab: her page leaves the room.
    await ana.close({ runBeforeUnload: true })
    await caro.waitForFunction((id) => !(globalThis as unknown as Win).mallaSession.people.list.value.some((p) => p.id === id && p.present), idAna, { timeout: 30_000 })
    await show(caro, 'messages')
    await caro.click(`.contact[data-peer="${idAna}"]`)
    const before = Date.now()
    await caro.fill('input[name=dm]', 'te espero en la plaza')
    await caro.press('input[name=dm]', 'Enter')
    await caro.waitForSelector('.line.mine:has-text("te espero en la plaza") .mark.waiting', { timeout: 30_000 })
    await screenshots(caro, 'messages-waiting')
    // What waits in the routers is encrypted.
    const stored = await caro.evaluate(() => fetch('/cgi-bin/shared-state/room-plaza-_mail', { method: 'POST', body: '{}' }).then((r) => r.text()))
    assert.match(stored, /BEGIN PGP MESSAGE/)
    assert.doesNotMatch(stored, /plaza/)
    await new Promise((r) => setTimeout(r, 1500))
    // Ana comes back in the same browser: same key (IndexedDB), same name, a new session.
    ana = await reopenApp(bAna, 'http://thisnode.info:8080/')
    await ana.waitForFunction(() => document.querySelector('.tab[data-view=messages] .badge')?.textContent === '1', undefined, { timeout: 30_000 })
    await show(ana, 'messages')
    // One person, one conversation: the message waited under Caro's key, and joins her session's conversation.
    await ana.waitForFunction(() => document.querySelectorAll('.contact').length === 2 && document.querySelectorAll('.contact[data-peer]').length === 2, undefined, { timeout: 10_000 })
    await ana.click(`.contact[data-peer="${idCaro}"]`)
    await ana.waitForSelector('.line-text:has-text("te espero en la plaza")')
    const shown = await ana.$eval('.line:has-text("te espero en la plaza")', (l) => ({ time: l.querySelector('time')?.textContent ?? '', sealed: l.querySelector('.sealed') !== null }))
    assert.equal(shown.sealed, true)
    const written = new Date(before)
    assert.ok(shown.time.includes(String(written.getMinutes()).padStart(2, '0')), `shown with the time it was written: ${shown.time}`)
    // Read: Ana removed it (signed), and Caro's page says so.
    await caro.waitForSelector('.line.mine:has-text("te espero en la plaza") .mark.read', { timeout: 30_000 })
    await show(ana, 'people')
    await ana.waitForSelector(`.person[data-peer="${idCaro}"] [data-testid=verified]`, { timeout: 20_000 })
    await show(ana, 'messages')
    await screenshots(ana, 'messages-arrived')
  })

  await t.test('screenshots of every view, desktop and phone', async () => {
    for (const view of ['people', 'chat', 'messages', 'files', 'map', 'tables']) {
      await show(caro, view)
      if (view === 'map') await caro.waitForSelector('.mesh-map .node.router', { timeout: 15_000 })
      if (view === 'tables') {
        await caro.waitForSelector('.table-list button', { timeout: 10_000 })
        await caro.click('.table-list button[data-table="room-plaza-chat"]')
        await caro.waitForSelector('.tables tbody tr', { timeout: 10_000 })
        // Live: a line written now shows up in the open table without another click.
        await ana.evaluate(() => (globalThis as unknown as { mallaSession: { chat: { say(x: string): Promise<void> } } }).mallaSession.chat.say('live in the tables view'))
        await caro.waitForSelector('.tables td.data code:has-text("live in the tables view")', { timeout: 10_000 })
      }
      if (view === 'map') await caro.waitForTimeout(1500)
      await screenshots(caro, view)
    }
    await screenshots(ana, 'chat-insecure')
    // The README's picture: a chat on a desktop, a file arriving on a phone.
    await overview(ana.context(), ['chat-first-lines-desktop.png', 'files-progress-phone.png'], 'overview.png')
  })
})
