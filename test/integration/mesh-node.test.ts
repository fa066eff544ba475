import assert from 'node:assert/strict'
import { test } from 'node:test'
import { weriftRtcFactory } from '../../src/node/rtc/werift-peer.js'
import { join, type Room } from '../../src/signaling/join.js'
import type { MessageValue } from '../../src/rtc/framed-channel.js'
import { fetchPoster } from '../../src/transport/http-poster.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { createServer, type Socket } from 'node:net'
import { CLI, startDaemon } from '../helpers/processes.js'
import { testRouter, untilRooms } from '../helpers/rooms.js'
import { waitFor } from '../helpers/wait.js'

type TestContext = { after(fn: () => unknown): void }

const rtc = weriftRtcFactory({ hostAddresses: ['127.0.0.1'] })

async function joinAll(t: TestContext, routerUrl: string, n: number, extra: Partial<Parameters<typeof join>[0]> = {}): Promise<Room[]> {
  const rooms = await Promise.all(
    Array.from({ length: n }, () => join({ room: 'test', routerUrl, rtc, poster: fetchPoster, target: 2, max: 4, pool: 2, ...extra })),
  )
  t.after(() => Promise.all(rooms.map((r) => r.leave())))
  return rooms
}

const connections = (rooms: readonly Room[]) => rooms.map((r) => r.mesh.stats().connected).join(',')

test('four Node peers behind one malla router reach their target connections and exchange typed messages', async (t) => {
  const d = await testRouter(t)
  const rooms = await joinAll(t, d.base, 4)
  assert.ok(rooms.every((r) => r.router.kind === 'malla' && r.router.name === 'r1'))
  await untilRooms(rooms, () => rooms.every((r) => r.mesh.stats().connected >= 2), () => `connections ${connections(rooms)}`)

  for (const r of rooms) {
    const s = r.mesh.stats()
    assert.ok(s.connected <= 4, 'never above max')
    assert.ok(s.peakPeerConnections <= 4 + 2 + 2, `at most max + pool + 2 RTCPeerConnections (peak ${s.peakPeerConnections})`)
    for (const p of r.mesh.peers()) assert.ok(rooms.some((o) => o.id === p.id) && p.id !== r.id)
  }
  // Both ends agree on every connection, once the last channels have opened at their second end.
  const symmetric = () => rooms.every((r) => r.mesh.peers().every((p) => rooms.find((o) => o.id === p.id)?.mesh.peers().some((q) => q.id === r.id)))
  await untilRooms(rooms, symmetric, () => rooms.map((r) => `${r.id}: ${r.mesh.peers().map((p) => p.id)}`).join('; '), 10_000)

  const [a] = rooms as [Room]
  const peer = a.mesh.peers()[0]!
  const other = rooms.find((r) => r.id === peer.id)!
  const back = other.mesh.peers().find((p) => p.id === a.id)!
  const got: Array<[MessageValue, string]> = []
  back.on('message', (value, kind) => got.push([value, kind]))
  const big = new Uint8Array(300_000).map((_, i) => i % 251)
  const progress: number[] = []
  await peer.send('hello')
  await peer.send({ json: [1, 'two', null] })
  await peer.send(new Uint8Array([1, 2, 3]))
  await peer.send(big, (p) => progress.push(p.bytes))
  await untilRooms(rooms, () => got.length === 4, () => `got ${got.length} of 4 messages`, 10_000)
  assert.deepEqual(got[0], ['hello', 'text'])
  assert.deepEqual(got[1], [{ json: [1, 'two', null] }, 'json'])
  assert.deepEqual(got[2], [new Uint8Array([1, 2, 3]), 'binary'])
  assert.equal(got[3]![1], 'binary')
  assert.deepEqual(got[3]![0], big, 'a 300 KB message arrives whole, in order')
  assert.ok(progress.length > 10 && progress.at(-1) === big.byteLength, 'progress events as the chunks go out')
})

test('a peer that leaves is replaced: the others go back to their target', async (t) => {
  const d = await testRouter(t)
  const rooms = await joinAll(t, d.base, 4)
  const started = Date.now()
  await untilRooms(rooms, () => rooms.every((r) => r.mesh.stats().connected >= 2), () => `connections ${connections(rooms)}`)
  t.diagnostic(`target reached in ${Date.now() - started} ms; ${rooms.map((r) => JSON.stringify(r.mesh.stats())).join(' ')}`)
  const [gone, ...rest] = rooms as [Room, ...Room[]]
  const leaving = Date.now()
  await gone.leave()
  t.diagnostic(`left in ${Date.now() - leaving} ms`)
  await untilRooms(rest, () => rest.every((r) => r.mesh.stats().connected >= 2 && r.mesh.peers().every((p) => p.id !== gone.id)), () => `connections ${connections(rest)}`)
  t.diagnostic(`back at target ${Date.now() - leaving} ms after the leave`)
})

test('malformed offers and answers in the tables are skipped and counted, and peers still connect', async (t) => {
  const d = await testRouter(t)
  const garbage = {
    'abcdefgh12345678.0': { v: 1, room: 'test', peer: 'abcdefgh12345678', s: ['x'], t: 1, exp: 9e15 },
    'zzzzzzzz.1': 'not an object',
    'someone.2': { v: 1, room: 'test', peer: 'zzzzzzzzzzzzzzzz', s: [], t: 1, exp: 9e15 },
  }
  const res = await fetch(`${d.base}/malla/v1/tables/room-test-_offers/insert`, { method: 'POST', body: JSON.stringify(garbage) })
  assert.equal(res.status, 200)
  const answers = { 'x.0>y': { v: 1, room: 'test', peer: 'yyyyyyyyyyyyyyyy', to: 'xxxxxxxxxxxxxxxx', offer: 'x.0', s: 5, t: 1, exp: 9e15 } }
  assert.equal((await fetch(`${d.base}/malla/v1/tables/room-test-_answers/insert`, { method: 'POST', body: JSON.stringify(answers) })).status, 200)
  const rooms = await joinAll(t, d.base, 2, { target: 1, max: 2 })
  await untilRooms(rooms, () => rooms.every((r) => r.mesh.stats().connected >= 1), () => `connections ${connections(rooms)}`)
  for (const r of rooms) {
    const ignored = r.mesh.stats().ignored
    assert.ok(ignored.offers >= 1, `bad offers counted (${ignored.offers})`)
    assert.ok(ignored.answers >= 1, `bad answers counted (${ignored.answers})`)
  }
})

test('malla join: a CLI peer in a room prints what happens as JSON lines and sends its stdin lines to every peer', async (t) => {
  const d = await testRouter(t)
  const cli = spawn(process.execPath, [CLI, 'join', 'test', '--url', d.base, '--target', '1'], { stdio: ['pipe', 'pipe', 'pipe'] })
  t.after(() => void cli.kill('SIGKILL'))
  const lines: Array<Record<string, unknown>> = []
  createInterface({ input: cli.stdout! }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>))
  const exited = new Promise<number | null>((resolve) => cli.once('exit', (code) => resolve(code)))
  const waitLine = (ok: (l: Record<string, unknown>) => boolean, what: string) =>
    untilRooms([], () => lines.some(ok), () => `${what}; got ${JSON.stringify(lines)}`, 20_000)
  await waitLine((l) => l.event === 'ready', 'ready')
  const cliId = lines[0]?.id as string
  const [room] = await joinAll(t, d.base, 1, { target: 1, max: 2 })
  const got: MessageValue[] = []
  room!.mesh.on('peer', (p) => p.on('message', (v) => got.push(v)))
  await waitLine((l) => l.event === 'peer' && l.id === room!.id, 'the CLI connected')
  await untilRooms([room!], () => room!.mesh.peers().some((p) => p.id === cliId), () => 'the room sees the CLI')
  await room!.mesh.peers()[0]!.send({ to: 'cli' })
  await waitLine((l) => l.event === 'message' && l.kind === 'json' && JSON.stringify(l.value) === '{"to":"cli"}', 'the message printed')
  cli.stdin!.write('hello from the shell\n')
  await untilRooms([room!], () => got.includes('hello from the shell'), () => `got ${JSON.stringify(got)}`, 10_000)
  cli.stdin!.end()
  assert.equal(await exited, 0, 'the end of stdin leaves the room and exits 0')
  const offers = (await (await fetch(`${d.base}/malla/v1/tables/room-test-_offers`)).json()) as Record<string, { author: string; data?: { s?: unknown } | null }>
  const mine = Object.values(offers).filter((e) => e.author === cliId)
  assert.ok(mine.length > 0 && mine.every((e) => e.data?.s === undefined), `no open offer of the CLI's is left: ${JSON.stringify(mine)}`)
})

test('joining keeps asking a router that does not answer, joins once it does, and gives up only when told', { timeout: 60_000 }, async (t) => {
  // A router that accepts connections and never answers (a busy one): each first exchange times out (3 s).
  const sockets = new Set<Socket>()
  const silent = createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
  })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const port = (silent.address() as { port: number }).port
  t.after(() => {
    for (const s of sockets) s.destroy()
    silent.close()
  })
  const troubles: string[] = []
  const log = { debug() {}, info() {}, warn: (m: string, f?: object) => void troubles.push(`${m} ${JSON.stringify(f)}`), error() {} }
  const started = Date.now()
  const joining = join({ room: 'test', routerUrl: `http://127.0.0.1:${port}`, rtc, poster: fetchPoster, log })
  let settled = false
  void joining.then(() => (settled = true), () => (settled = true))
  // Past the first timeout, and a retry: still joining, not failed.
  while (troubles.length < 2 && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 100))
  assert.ok(troubles.length >= 2, `two failed attempts reported: ${troubles.join('; ')}`)
  assert.match(troubles[0] as string, /no complete answer within 3000 ms/)
  assert.equal(settled, false, 'join is still trying')
  // The router comes back on the same port: the join completes.
  for (const s of sockets) s.destroy()
  await new Promise<void>((resolve) => silent.close(() => resolve()))
  const dir = await mkdtemp(joinPath(tmpdir(), 'malla-mesh-'))
  const d = await startDaemon(t, ['--data', dir, '--name', 'late', '--port', String(port)])
  t.after(async () => {
    await d.stop('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })
  const room = await joining
  t.after(() => room.leave())
  assert.equal(room.router.kind, 'malla')
  assert.equal(room.router.name, 'late')

  // Told when to give up: it does, with PEER, soon after.
  const gaveUp = Date.now()
  await assert.rejects(
    join({ room: 'test', routerUrl: 'http://127.0.0.1:9', rtc, poster: fetchPoster, signal: AbortSignal.timeout(1000) }),
    (e: unknown) => e instanceof Error && (e as { code?: string }).code === 'PEER' && /no answer from the router/.test(e.message),
  )
  assert.ok(Date.now() - gaveUp < 6000, `gave up after ${Date.now() - gaveUp} ms`)
})

test('room.connect: an existing connection is returned as it is; a peer that is not there, or this one, fails with a clear error', { timeout: 60_000 }, async (t) => {
  const d = await testRouter(t)
  const [a, b] = (await joinAll(t, d.base, 2, { target: 1 })) as [Room, Room]
  await waitFor(() => a.mesh.stats().connected === 1 && b.mesh.stats().connected === 1, 'A and B connected')
  const existing = await a.connect(b.id)
  assert.equal(existing.id, b.id)
  assert.equal(a.mesh.stats().connected, 1, 'no second connection')
  await assert.rejects(a.connect(a.id), (e: unknown) => (e as { code?: string }).code === 'BAD_INPUT')
  // Nobody by that id in the room: the offer is never acknowledged, and the attempt is closed.
  const started = Date.now()
  await assert.rejects(a.connect('nosuchpeer000000'), (e: unknown) => (e as { code?: string }).code === 'PEER' && /no acknowledgement from nosuchpeer000000/.test((e as Error).message))
  assert.ok(Date.now() - started < 10_000)
  await waitFor(() => a.mesh.stats().peerConnections <= 2, 'the attempt released its RTCPeerConnection')
  // And it keeps working.
  assert.equal((await a.connect(b.id)).id, b.id)
})

test('a bad room name is refused before anything goes to the router', { timeout: 10_000 }, async () => {
  const started = Date.now()
  // Port 9 (discard) answers nothing: were the router asked first, this join would keep trying.
  await assert.rejects(join({ room: 'no spaces here', routerUrl: 'http://127.0.0.1:9', rtc, poster: fetchPoster }), (e: unknown) => (e as { code?: string }).code === 'BAD_INPUT')
  assert.ok(Date.now() - started < 1000)
})
