import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TypeName } from '../../src/core/types.js'
import type { PeerDaemon } from '../../src/node/daemon/peer-daemon.js'
import { inProcessDaemon } from '../helpers/in-process-daemon.js'

async function daemon(t: Parameters<typeof inProcessDaemon>[0], name: string): Promise<PeerDaemon> {
  const d = await inProcessDaemon(t, { name })
  await d.start()
  return d
}

test('a neighbour that appears while a new table is still being saved still gets it, whatever the timing', async (t) => {
  // The first write of a new table is applied, then saved; a neighbour discovered in between must not miss it
  // until the next anti-entropy round (a minute away by default).
  for (const gapMs of [0, 1, 2, 3, 4, 5, 6, 8]) {
    const a = await daemon(t, `A${gapMs}`)
    const b = await daemon(t, `B${gapMs}`)
    const type = `fresh${gapMs}` as TypeName
    const arrived = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gap ${gapMs} ms: B never got the write`)), 5000)
      b.replica.on('change', (e) => {
        if (e.type === type) {
          clearTimeout(timer)
          resolve()
        }
      })
    })
    const written = a.replica.insert(type, [['k', gapMs]])
    await new Promise((r) => setTimeout(r, gapMs))
    a.addNeighbour(b.url.replace(/\/$/, ''))
    await written
    await arrived
    assert.equal((await b.replica.get(type)).table.get('k')?.data, gapMs)
  }
})
