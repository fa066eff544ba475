import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeFrame, u32 } from '../../src/sync/async/async-frames.js'
import { EMPTY_SLICE, encodeSlice } from '../../src/sync/async/state-slice.js'
import { rawAsyncClient, within } from '../helpers/async-raw-client.js'
import { startDaemon, tempDir } from '../helpers/processes.js'
import { hostLink } from './netns-helpers.js'

const open = (t: { after(fn: () => unknown): void }, from: string, host: string, port: number) => rawAsyncClient(t, host, port, from)

async function handshake(c: Awaited<ReturnType<typeof open>>): Promise<void> {
  c.socket.write(u32(1))
  assert.equal((await within(c.reader.read(4), 5000, 'version')).readUInt32BE(0), 1)
  c.socket.write(u32(1))
}

test('one address cannot hold the shared-state-async port nor send past its budget; another is served meanwhile', async (t) => {
  const link = await hostLink(t)
  const [attacker, honest] = link.outside as [string, string]
  // A small budget, so that one frame passes it: 64 KiB at once, then 1 KiB/s.
  await startDaemon(t, ['--data', await tempDir(t), '--name', 'R', '--async-port', '3490', '--async-types', 'bat-hosts', '--source-burst', '65536', '--source-rate', '1024'], { netns: link.ns, host: '0.0.0.0' })
  const held = []
  for (let i = 0; i < 4; i++) {
    const c = await open(t, attacker, link.inside, 3490)
    await handshake(c)
    held.push(c)
  }
  // The fifth from the same address is closed at once, unanswered.
  const fifth = await open(t, attacker, link.inside, 3490)
  fifth.socket.write(u32(1))
  await within(fifth.closed, 5000, 'the fifth connection closing')
  await assert.rejects(fifth.reader.read(4))

  // Another address gets a whole exchange while the four are held.
  const other = await open(t, honest, link.inside, 3490)
  await handshake(other)
  const frame = encodeFrame('bat-hosts', encodeSlice([['mac-h', { author: 'H', ttl: 2431, data: 'honest' }]]))
  other.socket.write(frame)
  assert.equal((await within(other.reader.read(4), 5000, 'ack')).readUInt32BE(0), frame.length)
  const n = (await other.reader.read(1))[0] as number
  await other.reader.read(n)
  assert.ok((await other.reader.read(4)).readUInt32BE(0) > EMPTY_SLICE.length)

  // A frame past the attacker's budget is refused after its header, before its data is read.
  for (const c of held.slice(1)) c.socket.destroy()
  const big = held[0] as (typeof held)[number]
  big.socket.write(Buffer.concat([Uint8Array.of(9), Buffer.from('bat-hosts'), u32(200_000)]))
  await within(big.closed, 5000, 'closing a frame over budget')
  await assert.rejects(big.reader.read(4))
})
