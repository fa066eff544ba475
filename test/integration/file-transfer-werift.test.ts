import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { it } from 'node:test'
import { FileTransfers, type IncomingTransfer, type TransferEnd } from '../../src/files/file-transfer.js'
import { fileSink, fileSource } from '../../src/node/files/file-io.js'
import { weriftRtcFactory } from '../../src/node/rtc/werift-peer.js'
import type { RtcPeer } from '../../src/rtc/rtc-peer.js'
import { hexSha256, randomBytes, watch } from '../helpers/files.js'

/** Loopback only, as in the conformance suite: nothing here may reach an address off this machine. */
const loopback = weriftRtcFactory({ hostAddresses: ['127.0.0.1'] })

async function connected(): Promise<[RtcPeer, RtcPeer]> {
  const [a, b] = [loopback(), loopback()]
  const opened = Promise.all(
    [a, b].map(
      (p) =>
        new Promise<void>((resolve, reject) => {
          p.on('open', resolve)
          p.on('close', (reason, detail) => reject(new Error(`closed before open: ${reason} ${detail ?? ''}`)))
        }),
    ),
  )
  await a.acceptAnswer(await b.acceptOffer(await a.createOffer()))
  await opened
  return [a, b]
}

it('FileTransfers over real werift peers: 8 MB from a file on disk to a file on disk, hashes matching, the app channel answering meanwhile', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'malla-files-'))
  const [a, b] = await connected()
  const sender = new FileTransfers({ channel: a.fileChannel })
  const receiver = new FileTransfers({ channel: b.fileChannel })
  t.after(async () => {
    sender.stop()
    receiver.stop()
    a.close()
    b.close()
    await rm(dir, { recursive: true, force: true })
  })
  sender.start()
  receiver.start()
  const data = randomBytes(8 * 1024 * 1024)
  await writeFile(join(dir, 'in.bin'), data)
  b.on('message', (m) => m === 'ping' && b.send('pong'))

  const offered = new Promise<{ incoming: IncomingTransfer; ended: Promise<TransferEnd> }>((resolve, reject) =>
    receiver.on('offer', (incoming) => {
      const ended = new Promise<TransferEnd>((r) => incoming.on('end', r))
      fileSink(join(dir, incoming.name)).then((sink) => (incoming.accept(sink), resolve({ incoming, ended })), reject)
    }),
  )
  const started = performance.now()
  const out = sender.send(await fileSource(join(dir, 'in.bin')), { name: 'out.bin' })
  const outSeen = watch(out)
  // Once 2 MB are on their way, one ping on the app channel: it must not wait for the file.
  let pongAt: number | undefined
  let pingAt: number | undefined
  out.on('progress', (p) => {
    if (pingAt !== undefined || p.bytes < 2 * 1024 * 1024) return
    pingAt = performance.now()
    const off = a.on('message', (m) => m === 'pong' && ((pongAt = performance.now()), off()))
    a.send('ping')
  })
  const { incoming, ended } = await offered
  const inSeen = watch(incoming)
  let doneAt = Number.POSITIVE_INFINITY
  incoming.on('end', () => (doneAt = performance.now()))
  assert.deepEqual(await ended, { state: 'done' })
  assert.deepEqual(await outSeen.ended, { state: 'done' })
  const ms = performance.now() - started
  const sha = hexSha256(data)
  assert.deepEqual(inSeen.done, [sha])
  assert.deepEqual(outSeen.done, [sha])
  assert.ok(Buffer.from(data).equals(await readFile(join(dir, 'out.bin'))), 'the file on disk is the file sent')
  assert.deepEqual((await readdir(dir)).sort(), ['in.bin', 'out.bin'], 'no .part file is left')
  assert.ok(pongAt !== undefined && pingAt !== undefined && pongAt < doneAt, 'the app channel answered before the file was done')
  const last = inSeen.progress.at(-1)
  assert.equal(last?.bytes, data.byteLength)
  t.diagnostic(
    `8 MB in ${ms.toFixed(0)} ms (${((data.byteLength / 1e6) / (ms / 1000)).toFixed(1)} MB/s, ${inSeen.progress.length} progress events at the receiver); ` +
      `an app-channel ping meanwhile took ${(pongAt - pingAt).toFixed(0)} ms`,
  )
  assert.deepEqual(receiver.stats(), { ignored: 0, stale: 0, dropped: 0, declined: 0 })
})
