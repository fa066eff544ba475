import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join as joinPath } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import type { Json } from '../../src/core/types.js'
import { createIdentity } from '../../src/identity/identity.js'
import { weriftRtcFactory } from '../../src/node/rtc/werift-peer.js'
import { join, type Room } from '../../src/signaling/join.js'
import { offerData, signalTypes, takenData } from '../../src/signaling/signal-records.js'
import { PER_KEY_QUOTA } from '../../src/signaling/room-admission.js'
import { recordSigner } from '../../src/signaling/signed-records.js'
import { fetchPoster } from '../../src/transport/http-poster.js'
import { CLI, post, runCli, tempDir } from '../helpers/processes.js'
import { testRouter, untilRooms } from '../helpers/rooms.js'

type TestContext = { after(fn: () => unknown): void }

const rtc = weriftRtcFactory({ hostAddresses: ['127.0.0.1'] })
const ROOM = 'signed'
const { offers: OFFERS } = signalTypes(ROOM)

async function joined(t: TestContext, base: string, extra: Partial<Parameters<typeof join>[0]>): Promise<Room> {
  const room = await join({ room: ROOM, routerUrl: base, rtc, poster: fetchPoster, target: 2, max: 4, pool: 2, ...extra })
  t.after(() => room.leave())
  return room
}

test('peers with identities connect knowing each other\'s key; a peer without one neither answers them nor is answered', { timeout: 120_000 }, async (t) => {
  const d = await testRouter(t)
  const [ana, bea] = await Promise.all([createIdentity('Ana'), createIdentity('Bea')])
  const a = await joined(t, d.base, { identity: ana })
  const b = await joined(t, d.base, { identity: bea })
  const c = await joined(t, d.base, {})
  assert.match(a.id, /^k[a-z2-7]{25}$/)
  await untilRooms([a, b], () => a.mesh.peers().some((p) => p.id === b.id) && b.mesh.peers().some((p) => p.id === a.id), () => `a: ${a.mesh.peers().map((p) => p.id)}, b: ${b.mesh.peers().map((p) => p.id)}`)
  assert.equal(a.mesh.peers().find((p) => p.id === b.id)?.signer, bea.fingerprint)
  assert.equal(b.mesh.peers().find((p) => p.id === a.id)?.signer, ana.fingerprint)
  // The peer without a key answers none of their offers (each says it takes signed answers only: its answers
  // would be refused, and its checks would only reach the offer's ICE agent), and nobody answers its own.
  await untilRooms([c], () => c.mesh.stats().offersPublished >= 2, () => JSON.stringify(c.mesh.stats()))
  await new Promise((resolve) => setTimeout(resolve, 3000))
  assert.deepEqual(c.mesh.peers().map((p) => p.id), [])
  assert.equal(c.mesh.stats().answersPublished, 0)
  assert.ok(a.mesh.peers().every((p) => p.id !== c.id) && b.mesh.peers().every((p) => p.id !== c.id))
})

test('an app that accepts unsigned records connects to a peer without an identity', { timeout: 120_000 }, async (t) => {
  const d = await testRouter(t)
  const ana = await createIdentity('Ana')
  const a = await joined(t, d.base, { identity: ana, acceptUnsigned: true })
  const c = await joined(t, d.base, {})
  await untilRooms([a, c], () => a.mesh.peers().some((p) => p.id === c.id) && c.mesh.peers().some((p) => p.id === a.id), () => `a: ${a.mesh.peers().map((p) => p.id)}, c: ${c.mesh.peers().map((p) => p.id)}`)
  assert.equal(a.mesh.peers().find((p) => p.id === c.id)?.signer, undefined)
  // The unsigned peer still checks what is signed: it knows whose key Ana holds.
  assert.equal(c.mesh.peers().find((p) => p.id === a.id)?.signer, ana.fingerprint)
})

test('forged withdrawals, taken marks and offers under a signed peer\'s id, posted all along, do not keep two signed peers apart', { timeout: 120_000 }, async (t) => {
  const d = await testRouter(t)
  const [ana, bea] = await Promise.all([createIdentity('Ana'), createIdentity('Bea')])
  // The attacker reads the router's offers every 100 ms and, for every offer there, posts a null, a taken mark
  // and an offer of its own under the offerer's id and as its author, all with a TTL no honest copy reaches.
  let posts = 0
  let stopped = false
  const attack = (async () => {
    while (!stopped) {
      const res = await post(`${d.base}/cgi-bin/shared-state/${OFFERS}`, '{}').catch(() => undefined)
      const table = res ? (JSON.parse(res.text) as Record<string, { author: string }>) : {}
      const forged: Record<string, { data: Json; author: string; bleachTTL: number }> = {}
      let n = 0
      for (const key of Object.keys(table)) {
        const peer = key.slice(0, key.lastIndexOf('.'))
        const kind = n++ % 3
        forged[key] = { author: peer, bleachTTL: 30, data: kind === 0 ? null : kind === 1 ? takenData({ by: 'mallory0000000001', expiresAt: Date.now() + 60_000 }) : offerData({ room: ROOM, session: ['Zx9T', 'q3kXh7gL0cYb1vT6Nw8pR2sF', 'TyoZwH1l5QOIqrvM3e8WVWZ3iIoqK-9OcT1UXmFwcXE', 'actpass', ['1 1 udp 1677729535 10.9.9.9 9 host'], 262144] as never, expiresAt: Date.now() + 60_000 }) }
        forged[`${key}>mallory0000000001`] = { author: 'mallory0000000001', bleachTTL: 30, data: null }
      }
      if (n > 0) {
        await post(`${d.base}/cgi-bin/shared-state/${OFFERS}`, JSON.stringify(forged)).catch(() => undefined)
        posts++
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })()
  t.after(async () => {
    stopped = true
    await attack
  })
  const a = await joined(t, d.base, { identity: ana })
  // Ana's offers are out and the attacker has been at them for a while before Bea comes.
  const started = Date.now()
  while (posts < 5 && Date.now() - started < 10_000) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.ok(posts >= 5, `the attacker posted ${posts} times`)
  const b = await joined(t, d.base, { identity: bea })
  await untilRooms([a, b], () => a.mesh.peers().some((p) => p.id === b.id), () => `a: ${a.mesh.peers().map((p) => p.id)}, posts: ${posts}`, 20_000)
  // The router kept none of the forgeries.
  const kept = JSON.parse((await post(`${d.base}/cgi-bin/shared-state/${OFFERS}`, '{}')).text) as Record<string, { data: unknown; author: string }>
  for (const [key, e] of Object.entries(kept)) {
    if (key.startsWith(a.id) || key.startsWith(b.id)) assert.ok(e.data !== null && typeof e.data === 'object' && 'pgp' in (e.data as object), `${key}: ${JSON.stringify(e.data)}`)
  }
})

test('malla join --key: a CLI peer signs with its key file and prints whose key each peer holds', { timeout: 120_000 }, async (t) => {
  const d = await testRouter(t)
  const dir = await tempDir(t)
  const keyFile = joinPath(dir, 'key.asc')
  const made = await runCli(['key', '--key', keyFile, 'new', '--name', 'Shell'])
  const shell = JSON.parse(made.stdout) as { fingerprint: string }
  const cli = spawn(process.execPath, [CLI, 'join', ROOM, '--url', d.base, '--target', '1', '--key', keyFile], { stdio: ['pipe', 'pipe', 'pipe'] })
  t.after(() => void cli.kill('SIGKILL'))
  const lines: Array<Record<string, unknown>> = []
  createInterface({ input: cli.stdout! }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>))
  const ana = await createIdentity('Ana')
  const a = await joined(t, d.base, { identity: ana, target: 1 })
  await untilRooms([a], () => lines.some((l) => l.event === 'peer' && l.id === a.id) && a.mesh.peers().length > 0, () => JSON.stringify(lines), 30_000)
  const ready = lines.find((l) => l.event === 'ready') as { id: string; fingerprint: string }
  assert.equal(ready.fingerprint, shell.fingerprint)
  assert.match(ready.id, /^k[a-z2-7]{25}$/)
  assert.deepEqual(lines.find((l) => l.event === 'peer'), { event: 'peer', id: a.id, fingerprint: ana.fingerprint })
  assert.equal(a.mesh.peers().find((p) => p.id === ready.id)?.signer, shell.fingerprint)
  cli.stdin!.end()
})

test('a hundred signed decoys of one key cost an answerer one attempt, not one each', { timeout: 120_000 }, async (t) => {
  const d = await testRouter(t)
  const mallory = await createIdentity('Mallory')
  // Offers that lead nowhere (a closed loopback port), each under a session id of its own, all signed by one key.
  const decoys: Record<string, { data: Json; author: string; bleachTTL: number }> = {}
  const decoyIds = new Set<string>()
  for (let i = 0; i < 100; i++) {
    const s = recordSigner(mallory)
    decoyIds.add(s.peerId)
    const key = `${s.peerId}.0`
    const data = offerData({ room: ROOM, session: ['Zx9T', 'q3kXh7gL0cYb1vT6Nw8pR2sF', 'TyoZwH1l5QOIqrvM3e8WVWZ3iIoqK-9OcT1UXmFwcXE', 'actpass', ['1 1 udp 2122260223 127.0.0.1 9 host'], 262144] as never, expiresAt: Date.now() + 120_000 }) as { [k: string]: Json }
    decoys[key] = { author: s.peerId, bleachTTL: 4, data: s.sign(OFFERS, key, data) }
  }
  const posted = await post(`${d.base}/cgi-bin/shared-state/${OFFERS}`, JSON.stringify(decoys))
  // Signed, they pass the router's checks; one key's quota of them is kept (the rest is dropped on arrival).
  assert.equal(Object.keys(JSON.parse(posted.text) as object).filter((k) => decoyIds.has(k.slice(0, k.lastIndexOf('.')))).length, PER_KEY_QUOTA.offers, "the router kept one key's quota of decoys")
  const [ana, bea] = await Promise.all([createIdentity('Ana'), createIdentity('Bea')])
  const a = await joined(t, d.base, { identity: ana, target: 3 })
  const b = await joined(t, d.base, { identity: bea, target: 3 })
  await untilRooms([a, b], () => a.mesh.peers().some((p) => p.id === b.id) && b.mesh.peers().some((p) => p.id === a.id), () => `a: ${JSON.stringify(a.mesh.stats())}`, 60_000)
  const answers = JSON.parse((await post(`${d.base}/cgi-bin/shared-state/${signalTypes(ROOM).answers}`, '{}')).text) as Record<string, unknown>
  for (const r of [a, b]) {
    const toDecoys = Object.keys(answers).filter((k) => k.endsWith(`>${r.id}`) && decoyIds.has(k.slice(0, k.indexOf('.'))))
    assert.ok(toDecoys.length <= 1, `${r.id} answered ${toDecoys.length} of one key's decoys`)
  }
})
