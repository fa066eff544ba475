import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isMallaError } from '../../src/core/errors.js'
import { parseTypeName } from '../../src/core/schema.js'
import { Replica } from '../../src/replica/replica.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { ChannelLink, type SyncPipe } from '../../src/sync/links/channel-link.js'
import { memoryPipes } from '../conformance/channel-fixture.js'
import { waitFor } from '../helpers/wait.js'

const chat = { flavour: 'ttl', type: parseTypeName('chat') } as const
const replica = (author: string) => new Replica({ store: new MemoryStore(), author })

/** A link at one end, and the raw far end: what a hostile peer can send it, and what it answers. */
function rawFarEnd(options: Partial<ConstructorParameters<typeof ChannelLink>[0]> = {}) {
  const pipes = memoryPipes()
  const heard: Record<string, unknown>[] = []
  pipes.b.onMessage((text) => heard.push(JSON.parse(text) as Record<string, unknown>))
  const closed: string[] = []
  const link = new ChannelLink({ replica: replica('here'), pipe: pipes.a, peer: 'far', ownName: 'here', timeoutMs: 300, ...options })
  link.onClose((why) => closed.push(why))
  return { link, far: pipes.b as SyncPipe, heard, closed }
}

test('a channel link tells its name first, and learns the far end\'s', async () => {
  const { link, far, heard } = rawFarEnd()
  await waitFor(() => heard.length > 0, 'the hello')
  assert.deepEqual(heard[0], { v: 1, hello: { name: 'here' } })
  await far.send('{"v":1,"hello":{"name":"Ana"}}')
  await waitFor(() => link.name === 'Ana', 'the far end\'s name')
  assert.equal(link.label, 'far (Ana)')
  assert.equal(link.startsCatchUp, false, '"here" sorts after "far": the far end starts the catch-up')
})

test('a table the link does not carry is refused with FORBIDDEN, and the link goes on', async () => {
  const { link, far, heard, closed } = rawFarEnd({ carries: (ref) => ref.type !== 'secrets' })
  await far.send('{"v":1,"id":1,"q":"push","flavour":"ttl","type":"secrets","entries":{"k":{"data":1,"author":"x","bleachTTL":9}}}')
  await far.send('{"v":1,"id":2,"q":"push","flavour":"ttl","type":"chat","entries":{"k":{"data":1,"author":"x","bleachTTL":9}}}')
  await waitFor(() => heard.filter((f) => f.r !== undefined).length === 2, 'two replies')
  assert.deepEqual(heard.filter((f) => f.id === 1).map((f) => [f.r, f.code]), [['error', 'FORBIDDEN']])
  assert.deepEqual(heard.filter((f) => f.id === 2).map((f) => [f.r, f.entries]), [['corrections', {}]])
  assert.deepEqual(closed, [])
  assert.equal(link.closed, false)
})

test('a far end flooding requests faster than they are answered is cut off, and what waited is dropped', async () => {
  // Frames of one burst arrive in one task (as a data channel delivers what one packet held): no answer can go out between them.
  let deliver: (text: string) => void = () => {}
  const closed: string[] = []
  const sent: string[] = []
  const pipe: SyncPipe = {
    send: (text) => void sent.push(text),
    onMessage: (l) => ((deliver = l), () => {}),
    onClose: () => () => {},
    close: () => {},
  }
  const link = new ChannelLink({ replica: replica('here'), pipe, peer: 'far' })
  link.onClose((why) => closed.push(why))
  const digests = '0'.repeat(16 * 16)
  for (let i = 1; i <= 200; i++) deliver(`{"v":1,"id":${i},"q":"reconcile","body":{"v":1,"flavour":"ttl","type":"chat","buckets":16,"digests":"${digests}"}}`)
  assert.equal(closed.length, 1)
  assert.match(String(closed[0]), /more than 64 requests waiting/)
  await new Promise((r) => setTimeout(r, 50))
  // The few already being answered when the flood was noticed are not sent on a closed link.
  assert.deepEqual(sent.filter((f) => f.includes('"r"')), [])
  await assert.rejects(link.request({ t: 'push', ref: chat, entries: new Map() }), (e) => isMallaError(e, 'PEER'))

  // Fewer frames, but big ones: the text waiting is bounded too.
  const big = new ChannelLink({ replica: replica('here'), pipe, peer: 'far' })
  big.onClose((why) => closed.push(why))
  const entries = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, { data: 'x'.repeat(50_000), author: 'x', bleachTTL: 9 }]))
  const frame = JSON.stringify({ v: 1, id: 1, q: 'push', flavour: 'ttl', type: 'chat', entries })
  for (let i = 0; i < 8; i++) deliver(frame.replace('"id":1', `"id":${i + 1}`))
  assert.equal(closed.length, 2)
  assert.match(String(closed[1]), /characters of requests waiting/)
})

test('text that is not a frame ends the link; a reply nobody asked for does not', async () => {
  const { far, closed } = rawFarEnd()
  await far.send('{"v":1,"id":77,"r":"corrections","entries":{}}')
  await new Promise((r) => setTimeout(r, 50))
  assert.deepEqual(closed, [])
  await far.send('{"v":2,"id":1,"q":"push"}')
  await waitFor(() => closed.length === 1, 'the link closed')
  assert.match(String(closed[0]), /protocol broken: not a sync frame/)
})

test('a request with no reply fails by its deadline; one answered wrongly fails at once; the link stays', async () => {
  const { link, far, heard } = rawFarEnd()
  const started = Date.now()
  await assert.rejects(link.request({ t: 'push', ref: chat, entries: new Map() }), (e) => isMallaError(e, 'PEER') && /did not answer a push within 300 ms/.test(e.message))
  assert.ok(Date.now() - started >= 290)
  const asked = link.request({ t: 'push', ref: chat, entries: new Map() })
  await waitFor(() => heard.filter((f) => f.q === 'push').length === 2, 'the second push')
  const id = heard.filter((f) => f.q === 'push')[1]?.id as number
  await far.send(`{"v":1,"id":${id},"r":"entries","entries":{}}`)
  await assert.rejects(asked, (e) => isMallaError(e, 'PEER') && /answered a push with something unusable/.test(e.message))
  assert.equal(link.closed, false)
})

test('a whole-table request is not answered on a channel: it could make this side send everything', async () => {
  const { far, heard } = rawFarEnd()
  await far.send('{"v":1,"id":5,"q":"table","flavour":"ttl","type":"chat","entries":{}}')
  await waitFor(() => heard.some((f) => f.id === 5), 'the reply')
  assert.deepEqual(heard.filter((f) => f.id === 5).map((f) => [f.r, f.code]), [['error', 'BAD_INPUT']])
})
