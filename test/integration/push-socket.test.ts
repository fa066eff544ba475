import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { WebSocket } from 'ws'
import type { Json, TypeName } from '../../src/core/types.js'
import { wsSocket } from '../../src/node/index.js'
import { nodeHttpPoster } from '../../src/node/transport/node-http-poster.js'
import { Replica } from '../../src/replica/replica.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { RouterLink } from '../../src/sync/router-link.js'
import { socketUrl, type SocketLike } from '../../src/transport/push-socket-client.js'
import { inProcessDaemon } from '../helpers/in-process-daemon.js'

/** Any type will do: the push socket carries every type alike. */
const ANSWERS_TYPE = 'malla-answers' as TypeName
const entry = (data: Json, bleachTTL: number) => ({ data, author: 'pagepeer1', bleachTTL })

/** A WebSocket to the daemon's push socket, with its replies queued in order. */
async function connect(base: string, path = '/malla/v1/push'): Promise<{ ws: WebSocket; next(): Promise<Record<string, unknown>> }> {
  const ws = new WebSocket(new URL(path, base).href.replace(/^http/, 'ws'))
  const replies: Array<Record<string, unknown>> = []
  const waiting: Array<(r: Record<string, unknown>) => void> = []
  ws.on('message', (data) => {
    const r = JSON.parse(data.toString()) as Record<string, unknown>
    const w = waiting.shift()
    if (w) w(r)
    else replies.push(r)
  })
  await once(ws, 'open')
  return {
    ws,
    next: () => {
      const r = replies.shift()
      if (r) return Promise.resolve(r)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no reply within 5 s')), 5000)
        waiting.push((x) => (clearTimeout(timer), resolve(x)))
      })
    },
  }
}

test('a push frame is merged like a push POST and answered with the corrections only', async (t) => {
  const daemon = await inProcessDaemon(t)
  const base = await daemon.start()
  const { ws, next } = await connect(base)
  t.after(() => ws.terminate())

  ws.send(JSON.stringify({ id: 1, type: 'malla-answers', entries: { 'a.0>b': entry({ s: 'x' }, 2) } }))
  assert.deepEqual(await next(), { id: 1, entries: {} })
  const stored = (await daemon.replica.read({ flavour: 'ttl', type: ANSWERS_TYPE })).table.get('a.0>b') as { data?: unknown } | undefined
  assert.deepEqual(stored?.data, { s: 'x' })

  // The router already holds a copy that wins (a higher TTL): that copy comes back as the correction.
  await daemon.replica.merge(ANSWERS_TYPE, new Map([['k', entry('newer', 9)]]))
  ws.send(JSON.stringify({ id: 2, type: 'malla-answers', entries: { k: entry('older', 3) } }))
  const reply = await next()
  assert.equal(reply.id, 2)
  assert.deepEqual((reply.entries as Record<string, { data: unknown }>).k?.data, 'newer')
})

test('bad push frames get an error answer each and change nothing; a socket that keeps sending garbage is closed', async (t) => {
  const daemon = await inProcessDaemon(t)
  const base = await daemon.start()
  const { ws, next } = await connect(base)
  t.after(() => ws.terminate())

  const bad: Array<[unknown, number | null]> = [
    [{ id: 3, type: 'Not A Type!', entries: {} }, 3],
    [{ id: 4, type: 'malla-answers', entries: { k: { data: 1 } } }, 4], // no author, no TTL
    [{ id: 5, type: 'malla-answers', entries: 'none' }, 5], // (`[]` is an empty table, as Lua writes one)
    [{ type: 'malla-answers', entries: {} }, null],
    [[1, 2], null],
  ]
  for (const [frame, id] of bad) {
    ws.send(JSON.stringify(frame))
    const reply = await next()
    assert.equal(reply.id, id, JSON.stringify(reply))
    assert.equal((reply.error as { code: string } | undefined)?.code, 'BAD_INPUT', JSON.stringify(reply))
  }
  ws.send('{not json')
  assert.equal(((await next()).error as { code: string }).code, 'BAD_INPUT')
  ws.send(Buffer.from([1, 2, 3]), { binary: true })
  assert.equal(((await next()).error as { code: string }).code, 'BAD_INPUT')
  assert.equal((await daemon.replica.read({ flavour: 'ttl', type: ANSWERS_TYPE })).table.size, 0)
  assert.equal(ws.readyState, WebSocket.OPEN, 'a few bad frames do not cost the socket')

  // Frames without an id count against the socket: at the tenth it is closed (policy violation).
  const closed = once(ws, 'close')
  for (let i = 0; i < 10; i++) ws.send('garbage')
  const [code] = (await closed) as [number]
  assert.equal(code, 1008)
})

test('a page of another origin may not open the push socket; a page of the daemon may', async (t) => {
  const daemon = await inProcessDaemon(t)
  const base = await daemon.start()
  const foreign = new WebSocket(socketUrl(base), { origin: 'http://example.org' })
  foreign.on('error', () => {})
  const [, res] = (await once(foreign, 'unexpected-response')) as [unknown, { statusCode: number }]
  assert.equal(res.statusCode, 403)
  foreign.terminate()
  const own = new WebSocket(socketUrl(base), { origin: new URL(base).origin })
  await once(own, 'open')
  own.close()
})

test('WebSocket upgrades on any other path are refused with 404', async (t) => {
  const daemon = await inProcessDaemon(t)
  const base = await daemon.start()
  const ws = new WebSocket(socketUrl(base).replace('/malla/v1/push', '/malla/v1/events'))
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }]
  assert.equal(res.statusCode, 404)
  ws.on('error', () => {}) // aborting a refused handshake reports an error
  ws.terminate()
})

test("a leaf's pushes go over the socket while it is open, and by POST at once when it is not", async (t) => {
  const daemon = await inProcessDaemon(t)
  const base = await daemon.start()
  const replica = new Replica({ store: new MemoryStore(), author: 'pagepeer1' })
  const frames: string[] = []
  const sockets: SocketLike[] = []
  // The real `ws` client, with every frame it sends noted.
  const counting = (url: string): SocketLike => {
    const s = wsSocket(url)
    const send = s.send.bind(s)
    s.send = (data: string) => (frames.push(data), send(data))
    sockets.push(s)
    return s
  }
  const link = new RouterLink({ replica, base, types: [ANSWERS_TYPE], poster: nodeHttpPoster, socket: counting })
  t.after(() => link.stop())
  assert.equal(await link.start(), 'malla')
  const deadline = Date.now() + 5000
  while (sockets[0]?.readyState !== WebSocket.OPEN && Date.now() < deadline) await sleep(10)
  assert.equal(sockets[0]?.readyState, WebSocket.OPEN, 'the push socket opened')

  const atRouter = async (key: string) => {
    const until = Date.now() + 5000
    while (Date.now() < until) {
      if ((await daemon.replica.read({ flavour: 'ttl', type: ANSWERS_TYPE })).table.has(key)) return true
      await sleep(10)
    }
    return false
  }
  await replica.insert(ANSWERS_TYPE, [['first', 1]])
  assert.ok(await atRouter('first'))
  assert.equal(frames.length, 1, 'the write went as one frame')
  assert.match(frames[0] as string, /"type":"malla-answers".*"first"/)

  // The socket drops: the next write still arrives (by POST), and no frame carries it.
  for (const s of sockets) s.close()
  await sleep(50)
  await replica.insert(ANSWERS_TYPE, [['second', 2]])
  assert.ok(await atRouter('second'))
  assert.equal(frames.length, 1)
})
