import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isMallaError } from '../../src/core/errors.js'
import { MessageRouter } from '../../src/overlay/message-router.js'
import { Replica } from '../../src/replica/replica.js'
import type { JsonValue } from '../../src/rtc/framed-channel.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { ChannelLink } from '../../src/sync/links/channel-link.js'
import { memoryPipes } from '../conformance/channel-fixture.js'
import { waitFor } from '../helpers/wait.js'

/** Peers with a router each, joined by channel links over pipes in memory as `edges` say; counts every routed frame sent. */
function overlay(names: readonly string[], edges: ReadonlyArray<readonly [string, string]>, options: { maxHops?: number; ackTimeoutMs?: number } = {}) {
  const routers = new Map<string, MessageRouter>()
  const got = new Map<string, Array<{ from: string; body: JsonValue }>>()
  let frames = 0
  for (const name of names) {
    const router = new MessageRouter({ id: name, ...options })
    routers.set(name, router)
    got.set(name, [])
    router.on('message', (from, body) => got.get(name)?.push({ from, body }))
  }
  const links = new Map<string, ChannelLink>()
  for (const [a, b] of edges) {
    const pipes = memoryPipes()
    for (const [me, far, pipe] of [[a, b, pipes.a], [b, a, pipes.b]] as const) {
      const router = routers.get(me) as MessageRouter
      const link = new ChannelLink({ replica: new Replica({ store: new MemoryStore(), author: me }), pipe, peer: far, ownName: me, onRoute: (route, from) => router.receive(route, from) })
      const send = link.sendRoute.bind(link)
      link.sendRoute = (route) => (frames++, send(route))
      router.attach(link)
      links.set(`${me}>${far}`, link)
    }
  }
  /** `linkOf('A', 'B')`: A's link to B. */
  const linkOf = (me: string, far: string) => links.get(`${me}>${far}`) as ChannelLink
  return { routers, got, frames: () => frames, linkOf, close: () => links.forEach((l) => l.close()) }
}

const get = <K, V>(m: Map<K, V>, k: K): V => m.get(k) as V

test('a message reaches a peer three connections away once, and the sender hears its acknowledgement', async (t) => {
  const o = overlay(['A', 'B', 'C', 'D'], [['A', 'B'], ['B', 'C'], ['C', 'D']])
  t.after(o.close)
  await get(o.routers, 'A').send('D', { hello: 'from A' })
  assert.deepEqual(get(o.got, 'D'), [{ from: 'A', body: { hello: 'from A' } }])
  for (const n of ['A', 'B', 'C']) assert.deepEqual(get(o.got, n), [], `${n} delivered nothing`)
})

test('with cycles, each peer forwards a message once: delivered once, and the frames stay bounded by the connections', async (t) => {
  const edges: Array<[string, string]> = [['A', 'B'], ['B', 'C'], ['C', 'A'], ['C', 'D'], ['B', 'D'], ['D', 'E']]
  const o = overlay(['A', 'B', 'C', 'D', 'E'], edges)
  t.after(o.close)
  await get(o.routers, 'A').send('E', 'one')
  await new Promise((r) => setTimeout(r, 50))
  assert.deepEqual(get(o.got, 'E'), [{ from: 'A', body: 'one' }])
  // A message and its acknowledgement each cross each connection at most once per direction.
  assert.ok(o.frames() <= 2 * 2 * edges.length, `${o.frames()} routed frames for ${edges.length} connections`)
  const dup = [...o.routers.values()].reduce((n, r) => n + r.dropped.duplicate, 0)
  assert.ok(dup > 0, 'some copies came back around a cycle and were dropped')
})

test('a message to a peer that is not there fails by its deadline, and goes no further than the hop bound', async (t) => {
  const names = ['A', 'B', 'C', 'D', 'E', 'F']
  const o = overlay(names, names.slice(1).map((n, i) => [names[i] as string, n] as const), { maxHops: 3, ackTimeoutMs: 300 })
  t.after(o.close)
  await assert.rejects(get(o.routers, 'A').send('nobody', 'hi'), (e) => isMallaError(e, 'PEER') && /no acknowledgement from nobody within 300 ms/.test(e.message))
  // Past the hop bound, even a peer that exists is out of reach.
  await assert.rejects(get(o.routers, 'A').send('F', 'too far'), (e) => isMallaError(e, 'PEER'))
  assert.deepEqual(get(o.got, 'F'), [])
  assert.ok(get(o.routers, 'D').dropped.hops > 0, 'the hop bound dropped it')
})

test('what cannot be sent is refused at once', async (t) => {
  const o = overlay(['A', 'B'], [['A', 'B']])
  t.after(o.close)
  const a = get(o.routers, 'A')
  await assert.rejects(a.send('B', 'x'.repeat(70_000)), (e) => isMallaError(e, 'BAD_INPUT'))
  await assert.rejects(a.send('not a peer!', 'x'), (e) => isMallaError(e, 'BAD_INPUT'))
})

test('a connection flooding routed messages loses the excess; the others still get through', async (t) => {
  const o = overlay(['A', 'B', 'C', 'D'], [['A', 'B'], ['B', 'C'], ['D', 'B']])
  t.after(o.close)
  // A, hostile: 2000 routed messages at once on its connection to B.
  const fromA = o.linkOf('A', 'B')
  for (let i = 0; i < 2000; i++) fromA.sendRoute({ id: `flood.${i}`, from: 'A', to: 'C', hops: 0, body: i })
  await waitFor(() => get(o.got, 'C').length > 0 && get(o.routers, 'B').dropped.rate > 0, 'the flood was cut')
  await new Promise((r) => setTimeout(r, 100))
  assert.ok(get(o.got, 'C').length <= 250, `C got ${get(o.got, 'C').length} of 2000`)
  await get(o.routers, 'D').send('C', 'still here')
  assert.ok(get(o.got, 'C').some((m) => m.body === 'still here'))
})
