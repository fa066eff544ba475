import assert from 'node:assert/strict'
import { test } from 'node:test'
import { silentLogger } from '../../src/core/log.js'
import type { TypeName } from '../../src/core/types.js'
import { DEFAULTS, PeerDaemon } from '../../src/node/daemon/peer-daemon.js'
import { tempDir } from '../helpers/processes.js'

async function daemon(t: Parameters<typeof tempDir>[0], name: string): Promise<PeerDaemon> {
  const dir = await tempDir(t)
  const d = new PeerDaemon({ ...DEFAULTS, port: 0, host: '127.0.0.1', dataDir: dir, name, peers: [], hooksDir: `${dir}/hooks`, log: silentLogger })
  await d.start()
  t.after(() => d.stop())
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
