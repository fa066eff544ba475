import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { BlobSink, blobSource } from '../../src/browser/files/blob-sink.js'
import { isMallaError } from '../../src/core/errors.js'
import { FILE_TRANSFER_DEFAULTS, FileTransfers, type FileTransfersOptions, type IncomingTransfer, type TransferEnd } from '../../src/files/file-transfer.js'
import { parseControl, sanitizeMime, sanitizeName } from '../../src/files/wire.js'
import type { RtcChannel, RtcOptions, RtcPeer } from '../../src/rtc/rtc-peer.js'
import { FakeRtcNetwork } from '../helpers/fake-rtc.js'
import { hexSha256, memorySink, memorySource, randomBytes, watch } from '../helpers/files.js'

/**
 * FileTransfers over the fake RTC pair (test/helpers/fake-rtc.ts), whose channels deliver a tick later and
 * count what is in flight in `bufferedAmount`: the protocol of docs/protocol.md §16 against honest peers, and
 * against a raw channel end that sends whatever a stranger could.
 */

const MiB = 1024 * 1024
/** A data frame as a sender sends it by default, header included. */
const CHUNK = FILE_TRANSFER_DEFAULTS.chunkBytes

async function openPair(t: TestContext, options?: RtcOptions): Promise<{ a: RtcPeer; b: RtcPeer }> {
  const make = new FakeRtcNetwork(1).factory()
  const [a, b] = [make(options), make(options)]
  t.after(() => {
    a.close()
    b.close()
  })
  const opened = Promise.all([a, b].map((p) => new Promise<void>((resolve) => p.on('open', resolve))))
  await a.acceptAnswer(await b.acceptOffer(await a.createOffer()))
  await opened
  return { a, b }
}

/** A sender on one end's file channel (`channel` may wrap it) and a receiver on the other's. */
async function twoSides(t: TestContext, options: Partial<FileTransfersOptions> = {}, wrap = (c: RtcChannel) => c) {
  const { a, b } = await openPair(t)
  const sender = new FileTransfers({ ...options, channel: wrap(a.fileChannel) })
  const receiver = new FileTransfers({ ...options, channel: b.fileChannel })
  sender.start()
  receiver.start()
  t.after(() => {
    sender.stop()
    receiver.stop()
  })
  return { a, b, sender, receiver }
}

async function until(ok: () => boolean, what: string | (() => string), ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${typeof what === 'string' ? what : what()}`)
    await sleep(2)
  }
}

/** The next offer the receiver hears of, accepted into `sink` if one is given. */
function nextOffer(receiver: FileTransfers, sink?: Parameters<IncomingTransfer['accept']>[0]): Promise<{ incoming: IncomingTransfer; ended: Promise<TransferEnd> }> {
  return new Promise((resolve) => {
    const off = receiver.on('offer', (incoming) => {
      off()
      const ended = new Promise<TransferEnd>((r) => incoming.on('end', r))
      if (sink) incoming.accept(sink)
      resolve({ incoming, ended })
    })
  })
}

/** A channel end driven by hand: sends any frame, records the control frames it gets. */
function rawEnd(channel: RtcChannel) {
  const frames: Record<string, unknown>[] = []
  channel.on('message', (m) => {
    if (typeof m === 'string') frames.push(JSON.parse(m) as Record<string, unknown>)
  })
  return {
    frames,
    send: (frame: unknown) => channel.send(typeof frame === 'string' || frame instanceof Uint8Array ? frame : JSON.stringify(frame)),
    data(id: number, bytes: Uint8Array) {
      const frame = new Uint8Array(4 + bytes.byteLength)
      new DataView(frame.buffer).setUint32(0, id)
      frame.set(bytes, 4)
      channel.send(frame)
    },
    async next(match: Record<string, unknown>): Promise<Record<string, unknown>> {
      const hit = () => frames.find((f) => Object.entries(match).every(([k, v]) => f[k] === v))
      await until(() => !!hit(), () => `a frame like ${JSON.stringify(match)} (got ${JSON.stringify(frames)})`)
      return hit() as Record<string, unknown>
    },
  }
}

/**
 * FileTransfers started on one end of a pair (`a`, the sender's; `b` with `on: 'b'`, the receiver's) and the other end
 * driven by hand: what a peer that is not malla's, or is hostile, can send it.
 */
async function oneSideRaw(t: TestContext, options: Partial<FileTransfersOptions> & { readonly on?: 'a' | 'b' } = {}) {
  const { on, ...rest } = options
  const { a, b } = await openPair(t)
  const [near, other] = on === 'b' ? [b, a] : [a, b]
  const transfers = new FileTransfers({ ...rest, channel: near.fileChannel })
  transfers.start()
  t.after(() => transfers.stop())
  return { a, b, transfers, far: rawEnd(other.fileChannel) }
}

/** A channel that notes, after each data frame it sends, how much is buffered, and whose frame it was. */
function recording(channel: RtcChannel) {
  const seen = { maxBuffered: 0, ids: [] as number[], sizes: [] as number[] }
  const wrapped: RtcChannel = {
    send(data) {
      channel.send(data)
      if (typeof data === 'string') return
      seen.ids.push(new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0))
      seen.sizes.push(data.byteLength)
      seen.maxBuffered = Math.max(seen.maxBuffered, channel.bufferedAmount)
    },
    get bufferedAmount() {
      return channel.bufferedAmount
    },
    get lowWaterMark() {
      return channel.lowWaterMark
    },
    get maxMessageSize() {
      return channel.maxMessageSize
    },
    get state() {
      return channel.state
    },
    on: (event, listener) => channel.on(event, listener),
    close: () => channel.close(),
  }
  return { seen, wrapped }
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

describe('FileTransfers', () => {
  describe('between honest peers', () => {
    it('moves a few MB: the hashes match on both sides, progress reaches the size, the source is read in few slices', async (t) => {
      const { sender, receiver } = await twoSides(t)
      const data = randomBytes(3 * MiB + 123)
      const sink = memorySink()
      const offered = nextOffer(receiver, sink)
      const source = memorySource(data)
      const out = sender.send(source, { name: 'photo.jpg', mime: 'image/jpeg' })
      assert.equal(out.state, 'offered')
      const outSeen = watch(out)
      const { incoming, ended } = await offered
      assert.deepEqual([incoming.name, incoming.size, incoming.mime, incoming.state], ['photo.jpg', data.byteLength, 'image/jpeg', 'receiving'])
      const inSeen = watch(incoming)
      assert.deepEqual(await outSeen.ended, { state: 'done' })
      assert.deepEqual(await ended, { state: 'done' })
      const sha = hexSha256(data)
      assert.deepEqual(outSeen.done, [sha])
      assert.deepEqual(inSeen.done, [sha])
      assert.ok(sameBytes(sink.bytes(), data), 'the sink got the file')
      assert.deepEqual([sink.closed, sink.aborted], [1, 0])
      assert.deepEqual([out.state, out.bytes, incoming.state, incoming.bytes], ['done', data.byteLength, 'done', data.byteLength])
      for (const seen of [outSeen, inSeen]) {
        const last = seen.progress.at(-1)
        assert.equal(last?.bytes, data.byteLength)
        assert.equal(last?.secondsLeft, 0)
        assert.ok(seen.progress.every((p, i) => p.size === data.byteLength && (i === 0 || p.bytes > (seen.progress[i - 1]?.bytes ?? 0))), 'progress only grows')
      }
      assert.ok(source.reads <= 4, `${source.reads} reads`)
      assert.equal(source.closed, 1)
      assert.deepEqual(receiver.stats(), { ignored: 0, stale: 0, dropped: 0, declined: 0 })
    })

    it('moves an empty file, with the hash of nothing', async (t) => {
      const { sender, receiver } = await twoSides(t)
      const sink = memorySink()
      const offered = nextOffer(receiver, sink)
      const out = sender.send(memorySource(new Uint8Array(0)), { name: 'empty' })
      const outSeen = watch(out)
      const { incoming, ended } = await offered
      const inSeen = watch(incoming)
      assert.deepEqual(await ended, { state: 'done' })
      assert.deepEqual(await outSeen.ended, { state: 'done' })
      assert.deepEqual(inSeen.done, [hexSha256(new Uint8Array(0))])
      assert.deepEqual(inSeen.progress.at(-1), { bytes: 0, size: 0, bytesPerSecond: 0, secondsLeft: 0 })
      assert.equal(sink.closed, 1)
    })

    it('a declined offer ends cancelled on both sides, and nothing is read', async (t) => {
      const { sender, receiver } = await twoSides(t)
      const offered = nextOffer(receiver)
      const source = memorySource(randomBytes(1000))
      const out = sender.send(source, { name: 'x' })
      const outSeen = watch(out)
      const { incoming, ended } = await offered
      incoming.decline()
      assert.deepEqual(await ended, { state: 'cancelled', reason: 'declined', by: 'local' })
      assert.deepEqual(await outSeen.ended, { state: 'cancelled', reason: 'declined', by: 'remote' })
      assert.equal(source.reads, 0)
      assert.throws(() => incoming.accept(memorySink()), (e: unknown) => isMallaError(e, 'PEER'), 'accept after decline')
    })

    it('the receiver cancels midway: the sender ends cancelled by the remote, and stops', async (t) => {
      const { sender, receiver } = await twoSides(t)
      const data = randomBytes(6 * MiB)
      let incoming: IncomingTransfer | undefined
      const sink = memorySink((written) => {
        if (written >= MiB) incoming?.cancel()
      })
      const offered = nextOffer(receiver, sink)
      const out = sender.send(memorySource(data), { name: 'big' })
      const outSeen = watch(out)
      const o = await offered
      incoming = o.incoming
      assert.deepEqual(await o.ended, { state: 'cancelled', reason: 'cancelled', by: 'local' })
      assert.deepEqual(await outSeen.ended, { state: 'cancelled', reason: 'cancelled', by: 'remote' })
      assert.ok(out.bytes < data.byteLength, `the sender sent ${out.bytes} of ${data.byteLength} bytes`)
      await sleep(20)
      assert.deepEqual([sink.closed, sink.aborted], [0, 1])
      assert.ok(outSeen.done.length === 0)
    })

    it('the sender cancels midway: the receiver ends cancelled by the remote, and its late data is dropped', async (t) => {
      const { sender, receiver } = await twoSides(t)
      const data = randomBytes(6 * MiB)
      const sink = memorySink()
      const offered = nextOffer(receiver, sink)
      const source = memorySource(data, (offset) => {
        if (offset >= 2 * MiB) out.cancel()
      })
      const out = sender.send(source, { name: 'big' })
      const outSeen = watch(out)
      const { incoming, ended } = await offered
      assert.deepEqual(await outSeen.ended, { state: 'cancelled', reason: 'cancelled', by: 'local' })
      assert.deepEqual(await ended, { state: 'cancelled', reason: 'cancelled', by: 'remote' })
      assert.ok(incoming.bytes < data.byteLength)
      await sleep(20)
      assert.deepEqual([sink.closed, sink.aborted], [0, 1])
      assert.equal(source.closed, 1)
    })

    it('a sink that throws fails the transfer on both sides', async (t) => {
      const { sender, receiver } = await twoSides(t)
      const sink = memorySink((written) => {
        if (written > 0) throw new Error('disk full')
      })
      const offered = nextOffer(receiver, sink)
      const out = sender.send(memorySource(randomBytes(MiB)), { name: 'x' })
      const outSeen = watch(out)
      const { ended } = await offered
      assert.deepEqual(await ended, { state: 'failed', reason: 'sink-failed', by: 'local' })
      assert.deepEqual(await outSeen.ended, { state: 'failed', reason: 'sink-failed', by: 'remote' })
      await sleep(10)
      assert.equal(sink.aborted, 1)
    })

    it('a source that fails fails the transfer on both sides', async (t) => {
      const { sender, receiver } = await twoSides(t)
      const sink = memorySink()
      const offered = nextOffer(receiver, sink)
      const source = memorySource(randomBytes(3 * MiB), (offset) => {
        if (offset > 0) throw new Error('EIO')
      })
      const out = sender.send(source, { name: 'x' })
      const outSeen = watch(out)
      const { ended } = await offered
      assert.deepEqual(await outSeen.ended, { state: 'failed', reason: 'source-failed', by: 'local' })
      assert.deepEqual(await ended, { state: 'failed', reason: 'source-failed', by: 'remote' })
      await sleep(10)
      assert.deepEqual([sink.aborted, source.closed], [1, 1])
    })

    it('the channel closing fails every open transfer with reason closed', async (t) => {
      const { a, sender, receiver } = await twoSides(t)
      const sink = memorySink()
      // Offers after the first stay unanswered (with no listener at all they would be declined).
      receiver.on('offer', () => {})
      const offered = nextOffer(receiver, sink)
      const out = sender.send(
        memorySource(randomBytes(4 * MiB), (offset) => {
          if (offset >= MiB) a.close()
        }),
        { name: 'x' },
      )
      const waiting = sender.send(memorySource(randomBytes(10)), { name: 'y' })
      const [outSeen, waitingSeen] = [watch(out), watch(waiting)]
      const { ended } = await offered
      assert.deepEqual(await outSeen.ended, { state: 'failed', reason: 'closed' })
      assert.deepEqual(await waitingSeen.ended, { state: 'failed', reason: 'closed' })
      assert.deepEqual(await ended, { state: 'failed', reason: 'closed' })
      assert.throws(() => sender.send(memorySource(randomBytes(1)), { name: 'late' }), (e: unknown) => isMallaError(e, 'PEER'))
    })

    it('stop() cancels every transfer, telling the other side, and send() then refuses', async (t) => {
      const { sender, receiver } = await twoSides(t)
      const offered = nextOffer(receiver)
      const out = sender.send(memorySource(randomBytes(10)), { name: 'x' })
      const outSeen = watch(out)
      const { ended } = await offered
      sender.stop()
      assert.deepEqual(await outSeen.ended, { state: 'cancelled', reason: 'stopped', by: 'local' })
      assert.deepEqual(await ended, { state: 'cancelled', reason: 'stopped', by: 'remote' })
      assert.throws(() => sender.send(memorySource(randomBytes(1)), { name: 'late' }), (e: unknown) => isMallaError(e, 'PEER'))
    })

    it('streams one file at a time: the data frames of one transfer never interleave with another', async (t) => {
      let seen = { maxBuffered: 0, ids: [] as number[] }
      const { sender, receiver } = await twoSides(t, {}, (c) => {
        const r = recording(c)
        seen = r.seen
        return r.wrapped
      })
      receiver.on('offer', (incoming) => incoming.accept(memorySink()))
      const files = [randomBytes(700_000), randomBytes(300_000), randomBytes(500_000)]
      const outs = files.map((f, i) => watch(sender.send(memorySource(f), { name: `f${i}` })))
      for (const o of outs) assert.deepEqual(await o.ended, { state: 'done' })
      const runs = seen.ids.filter((id, i) => i === 0 || id !== seen.ids[i - 1])
      assert.deepEqual(runs.length, 3, `data frames by transfer id: ${runs.join(' ')}`)
      assert.equal(new Set(runs).size, 3)
    })

    it('backpressure: the sender never lets bufferedAmount pass the high-water mark by more than one chunk', async (t) => {
      for (const [highWaterMark, lowWaterMark] of [
        [undefined, 0],
        [200 * 1024, 64 * 1024],
      ] as const) {
        const { a, b } = await openPair(t, { lowWaterMark })
        const { seen, wrapped } = recording(a.fileChannel)
        const sender = new FileTransfers({ channel: wrapped, ...(highWaterMark ? { highWaterMark } : {}) })
        // A window above the marks: here only the high-water mark holds the sender back.
        const receiver = new FileTransfers({ channel: b.fileChannel, receiveWindow: 8 * MiB })
        sender.start()
        receiver.start()
        t.after(() => (sender.stop(), receiver.stop()))
        const offered = nextOffer(receiver, memorySink())
        const out = watch(sender.send(memorySource(randomBytes(4 * MiB)), { name: 'x' }))
        await offered
        assert.deepEqual(await out.ended, { state: 'done' })
        const mark = highWaterMark ?? MiB
        assert.ok(seen.maxBuffered <= mark + CHUNK, `bufferedAmount reached ${seen.maxBuffered}, over ${mark} + ${CHUNK}`)
        // The mark was reached, so the sender did wait for drain on the way.
        assert.ok(seen.maxBuffered >= mark, `bufferedAmount only reached ${seen.maxBuffered}`)
      }
    })

    it("the receiver's window: a slow sink slows the sender, which never has more than the window unstored, and nothing fails", async (t) => {
      const window = 256 * 1024
      const { sender, receiver } = await twoSides(t, { receiveWindow: window, highWaterMark: 4 * MiB })
      const file = randomBytes(3 * MiB)
      let stored = 0
      let worst = 0
      const inner = memorySink()
      // 2 ms a chunk: far slower than the fake channel, so without the window the whole file would wait in the backlog.
      const sink = { ...inner, write: async (chunk: Uint8Array) => (await sleep(2), inner.write(chunk), void (stored += chunk.byteLength)) }
      const offered = nextOffer(receiver, sink)
      const outgoing = sender.send(memorySource(file), { name: 'slow' })
      const out = watch(outgoing)
      outgoing.on('progress', () => void (worst = Math.max(worst, outgoing.bytes - stored)))
      const { ended } = await offered
      const sampler = setInterval(() => void (worst = Math.max(worst, outgoing.bytes - stored)), 1)
      t.after(() => clearInterval(sampler))
      assert.deepEqual(await out.ended, { state: 'done' })
      assert.deepEqual(await ended, { state: 'done' })
      clearInterval(sampler)
      assert.ok(sameBytes(inner.bytes(), file))
      assert.ok(worst <= window + CHUNK, `sent and not stored reached ${worst}, over the window ${window} + a chunk`)
      assert.ok(worst >= window / 2, `the window was never used: at most ${worst} in flight`)
      assert.deepEqual(sender.stats(), { ignored: 0, stale: 0, dropped: 0, declined: 0 })
    })

    it('the receiver acks every frame its store takes, and says so in its accept', async (t) => {
      const { transfers: receiver, far } = await oneSideRaw(t, { on: 'b' })
      receiver.on('offer', (incoming) => incoming.accept(memorySink()))
      const payload = CHUNK - 4
      const frames = 6
      far.send({ t: 'offer', id: 7, name: 'paced', size: frames * payload })
      const accept = await far.next({ t: 'accept', id: 7 })
      assert.equal(accept.window, 256 * 1024)
      assert.equal(accept.ackEvery, 1)
      const acks = () => far.frames.filter((f) => f.t === 'ack').map((f) => f.n as number)
      for (let i = 1; i <= frames; i++) {
        far.data(7, randomBytes(payload))
        // The ack follows the sink's write a few microtasks later; the fake channel, a tick.
        await until(() => acks().length === i, () => `the ack of frame ${i} (acks ${JSON.stringify(acks())})`)
        assert.equal(acks().at(-1), i * payload)
      }
    })

    it('on a full link (acks later the more is in flight) the sender keeps about a frame in flight, not its whole window, when the receiver acks every frame', async (t) => {
      const { b, transfers: sender, far } = await oneSideRaw(t)
      const payload = CHUNK - 4
      /**
       * A link that gets one frame through every 20 ms: frames wait in its queue, and each is acked as it gets
       * through. Returns the frames in flight (queued or getting through) at each delivery, from the middle of the
       * file to a window before its end (where the last frames drain whatever the window).
       */
      const inFlight = async (name: string, ackEvery?: number): Promise<number[]> => {
        const queue: number[] = []
        const off = b.fileChannel.on('message', (m) => void (typeof m !== 'string' && queue.push(m.byteLength - 4)))
        const file = randomBytes(60 * payload)
        const transfer = watch(sender.send(memorySource(file), { name }))
        const offer = await far.next({ t: 'offer', name })
        far.send({ t: 'accept', id: offer.id, window: 256 * 1024, ...(ackEvery ? { ackEvery } : {}) })
        const depths: number[] = []
        for (let delivered = 0; delivered < file.byteLength; ) {
          await sleep(20)
          const n = queue.shift()
          if (n === undefined) continue
          depths.push(queue.length + 1)
          delivered += n
          far.send({ t: 'ack', id: offer.id, n: delivered })
        }
        off()
        await far.next({ t: 'done', id: offer.id })
        far.send({ t: 'received', id: offer.id, sha256: hexSha256(file) })
        assert.deepEqual(await transfer.ended, { state: 'done' })
        return depths.slice(depths.length / 2, -Math.ceil((256 * 1024) / payload))
      }
      const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length
      // A receiver that does not say how often it acks (an older one): the window is all the sender goes by.
      const fixed = await inFlight('fixed')
      const windowFrames = Math.floor((256 * 1024) / payload)
      assert.ok(mean(fixed) >= windowFrames - 0.5, `with the window alone, ${JSON.stringify(fixed)} frames in flight (a window is ${windowFrames})`)
      // Every frame acked: the round trips show the queue, and the sender stops feeding it.
      const paced = await inFlight('paced', 1)
      assert.ok(mean(paced) <= 2, `paced, ${JSON.stringify(paced)} frames in flight`)
    })

    it('reports progress at most every 100 ms, with a rate and the time left', async (t) => {
      const { sender, receiver } = await twoSides(t)
      const offered = nextOffer(receiver, memorySink())
      const size = 4 * MiB
      const source = memorySource(randomBytes(size))
      const slow = { ...source, read: async (offset: number, length: number) => (await sleep(60), source.read(offset, length)) }
      const started = Date.now()
      const out = watch(sender.send(slow, { name: 'slow' }))
      await offered
      assert.deepEqual(await out.ended, { state: 'done' })
      const elapsed = Date.now() - started
      assert.ok(out.progress.length <= Math.ceil(elapsed / 100) + 2, `${out.progress.length} progress events in ${elapsed} ms`)
      assert.ok(out.progress.length >= 2)
      const middle = out.progress.slice(1, -1)
      assert.ok(middle.every((p) => p.bytesPerSecond > 0 && Number.isFinite(p.secondsLeft) && p.secondsLeft > 0), JSON.stringify(middle))
    })

    it('fills whole frames from reads of any size: only the last frame is short, and the bytes arrive in order', async (t) => {
      const { a, b } = await openPair(t)
      const { seen, wrapped } = recording(a.fileChannel)
      const sender = new FileTransfers({ channel: wrapped })
      const receiver = new FileTransfers({ channel: b.fileChannel })
      sender.start()
      receiver.start()
      t.after(() => (sender.stop(), receiver.stop()))
      const file = randomBytes(3 * MiB + 12345)
      const inner = memorySource(file)
      // Reads of odd sizes, as a stream gives them: 1 byte, a few KB, most of a frame, more than one.
      const sizes = [1, 4096, 70_001, 65_531, 200_000, 3]
      let reads = 0
      const odd = { ...inner, read: (offset: number, length: number) => inner.read(offset, Math.min(length, sizes[reads++ % sizes.length] as number)) }
      const sink = memorySink()
      const offered = nextOffer(receiver, sink)
      const out = watch(sender.send(odd, { name: 'odd' }))
      await offered
      assert.deepEqual(await out.ended, { state: 'done' })
      assert.ok(sameBytes(sink.bytes(), file))
      assert.ok(reads > 20, `${reads} reads`)
      assert.ok(seen.sizes.slice(0, -1).every((n) => n === CHUNK), `frame sizes: ${[...new Set(seen.sizes)].join(', ')}`)
      assert.equal(seen.sizes.reduce((x, y) => x + y, 0) - 4 * seen.sizes.length, file.byteLength)
    })

    it('blobSource reads a Blob in order from its stream, and anywhere else by slices', async () => {
      const data = randomBytes(5 * MiB + 3)
      const source = blobSource(new Blob([data as Uint8Array<ArrayBuffer>]))
      const parts: Uint8Array[] = []
      for (let at = 0; at < 2 * MiB; ) {
        const part = await source.read(at, 300_000)
        assert.ok(part.byteLength > 0 && part.byteLength <= 300_000, `a read of ${part.byteLength}`)
        parts.push(part)
        at += part.byteLength
      }
      const first = Buffer.concat(parts)
      assert.ok(sameBytes(first, data.subarray(0, first.byteLength)))
      // Back to the start, then on from there: slices, with the right bytes.
      assert.ok(sameBytes(await source.read(10, 1000), data.subarray(10, 1010)))
      assert.ok(sameBytes(await source.read(1010, 5), data.subarray(1010, 1015)))
      assert.ok(sameBytes(await source.read(5 * MiB, 100), data.subarray(5 * MiB)))
      await source.close?.()
    })

    it("a page's Blob sink and Blob source (Node's Blob stands in) carry 9 MB in Blob parts", async (t) => {
      const { sender, receiver } = await twoSides(t)
      const data = randomBytes(9 * MiB + 7)
      const sink = new BlobSink()
      assert.throws(() => sink.blob(), (e: unknown) => isMallaError(e, 'PEER'), 'blob() before the end')
      const offered = nextOffer(receiver, sink)
      const out = watch(sender.send(blobSource(new Blob([data as Uint8Array<ArrayBuffer>])), { name: 'x.bin', mime: 'application/x-test' }))
      const { incoming, ended } = await offered
      assert.deepEqual(await ended, { state: 'done' })
      assert.deepEqual(await out.ended, { state: 'done' })
      const blob = sink.blob(incoming.mime)
      assert.equal(blob.type, 'application/x-test')
      assert.ok(sameBytes(new Uint8Array(await blob.arrayBuffer()), data))
      const aborted = new BlobSink()
      aborted.write(randomBytes(10))
      aborted.abort()
      assert.throws(() => aborted.blob(), (e: unknown) => isMallaError(e, 'PEER'), 'blob() after an abort')
    })

    it('keeps at most maxPendingOffers of its own offers unanswered; the others go out as those are answered', async (t) => {
      const { transfers: sender, far } = await oneSideRaw(t, { maxPendingOffers: 2 })
      const outs = [1, 2, 3, 4].map((i) => sender.send(memorySource(randomBytes(10)), { name: `f${i}` }))
      await far.next({ t: 'offer', name: 'f2' })
      await sleep(10)
      assert.deepEqual(far.frames.map((f) => f.name), ['f1', 'f2'])
      far.send({ t: 'decline', id: outs[0]?.id })
      await far.next({ t: 'offer', name: 'f3' })
      far.send({ t: 'accept', id: outs[1]?.id })
      await far.next({ t: 'offer', name: 'f4' })
      assert.equal(outs[0]?.state, 'cancelled')
    })
  })

  describe('against a hostile peer', () => {
    /** A receiver on b's file channel that accepts every offer into a sink of its own, and a raw far end on a's. */
    async function receiverAndRaw(t: TestContext, options: Partial<FileTransfersOptions> = {}) {
      const { transfers: receiver, far } = await oneSideRaw(t, { ...options, on: 'b' })
      const ends = new Map<number, TransferEnd>()
      const sinks = new Map<number, ReturnType<typeof memorySink>>()
      const offers: IncomingTransfer[] = []
      return { receiver, far, ends, sinks, offers }
    }

    it('a sender that lies (more bytes than declared, done before the end, a wrong hash) fails its own transfer; nothing throws', async (t) => {
      const { receiver, far, ends, sinks } = await receiverAndRaw(t)
      receiver.on('offer', (incoming) => {
        const sink = memorySink()
        sinks.set(incoming.id, sink)
        incoming.on('end', (e) => ends.set(incoming.id, e))
        incoming.accept(sink)
      })
      const ended = async (id: number) => (await until(() => ends.has(id), `transfer ${id} ended`), ends.get(id))

      far.send({ t: 'offer', id: 1, name: 'more', size: 10 })
      await far.next({ t: 'accept', id: 1 })
      far.data(1, randomBytes(6))
      far.data(1, randomBytes(5))
      assert.deepEqual(await ended(1), { state: 'failed', reason: 'size-exceeded', by: 'local' })
      await far.next({ t: 'decline', id: 1, reason: 'size-exceeded' })
      far.data(1, randomBytes(3)) // late: dropped

      const hundred = randomBytes(100)
      far.send({ t: 'offer', id: 2, name: 'early', size: 100 })
      await far.next({ t: 'accept', id: 2 })
      far.data(2, hundred.subarray(0, 50))
      far.send({ t: 'done', id: 2, sha256: hexSha256(hundred) })
      assert.deepEqual(await ended(2), { state: 'failed', reason: 'incomplete', by: 'local' })

      far.send({ t: 'offer', id: 3, name: 'wrong', size: 100 })
      await far.next({ t: 'accept', id: 3 })
      far.data(3, hundred)
      far.send({ t: 'done', id: 3, sha256: hexSha256(randomBytes(100)) })
      assert.deepEqual(await ended(3), { state: 'failed', reason: 'hash-mismatch', by: 'local' })
      await far.next({ t: 'decline', id: 3, reason: 'hash-mismatch' })

      for (const [id, size] of [[10, -1], [11, 1.5], [12, 2 ** 53], [13, 1e300]] as const) {
        far.send({ t: 'offer', id, name: 'impossible', size })
        await far.next({ t: 'decline', id, reason: 'bad-offer' })
      }
      await sleep(10)
      assert.deepEqual([...sinks.keys()], [1, 2, 3], 'an impossible size never reaches the app')
      for (const sink of sinks.values()) assert.deepEqual([sink.closed, sink.aborted], [0, 1])
      assert.deepEqual(receiver.stats(), { ignored: 0, stale: 0, dropped: 1, declined: 4 })
    })

    it('a receiver that never acks holds up only its own transfer; false acks are ignored; an accept without a window streams unpaced', async (t) => {
      const { b, transfers: sender, far } = await oneSideRaw(t)
      let got = 0
      b.fileChannel.on('message', (m) => void (typeof m !== 'string' && (got += m.byteLength - 4)))
      const file = randomBytes(2 * MiB)
      const stuck = sender.send(memorySource(file), { name: 'stuck' })
      const offer = await far.next({ t: 'offer', name: 'stuck' })
      const window = 128 * 1024
      far.send({ t: 'accept', id: offer.id, window })
      await until(() => got > window - CHUNK, () => `the first window (got ${got}, frames ${JSON.stringify(far.frames)})`)
      await sleep(50)
      assert.ok(got <= window + CHUNK, `${got} bytes arrived with nothing acknowledged, over the window`)
      // Acks for more than was sent, and going backwards, say nothing; a true one lets the next bytes go.
      far.send({ t: 'ack', id: offer.id, n: 10 * MiB })
      far.send({ t: 'ack', id: offer.id, n: 'lots' })
      await sleep(30)
      assert.ok(got <= window + CHUNK, 'a false ack let bytes through')
      far.send({ t: 'ack', id: offer.id, n: got })
      await until(() => got > window + CHUNK, 'bytes after a true ack')
      far.send({ t: 'ack', id: offer.id, n: 1 })
      assert.equal(stuck.state, 'sending')
      await until(() => sender.stats().stale === 2, () => `stale ${sender.stats().stale}`)
      assert.equal(sender.stats().ignored, 1)
      stuck.cancel()
      await far.next({ t: 'cancel', id: offer.id })

      // An accept without a window (a receiver that keeps none) gets the file at the channel's pace, with no ack.
      got = 0
      const open = watch(sender.send(memorySource(file), { name: 'open' }))
      const second = await far.next({ t: 'offer', name: 'open' })
      far.send({ t: 'accept', id: second.id })
      const done = await far.next({ t: 'done', id: second.id })
      assert.equal(done.sha256, hexSha256(file))
      assert.equal(got, file.byteLength)
      far.send({ t: 'received', id: second.id, sha256: hexSha256(file) })
      assert.deepEqual(await open.ended, { state: 'done' })
    })

    it('garbage control frames are ignored and counted; stray data is dropped; the receiver still works after', async (t) => {
      const { receiver, far, offers } = await receiverAndRaw(t)
      receiver.on('offer', (incoming) => void offers.push(incoming))
      const garbage = [
        'not json',
        '"a string"',
        'null',
        '[]',
        '{}',
        '{"t":"offer"}',
        '{"t":"offer","id":-1,"name":"x","size":1}',
        '{"t":"offer","id":4294967296,"name":"x","size":1}',
        '{"t":"offer","id":1,"name":5,"size":1}',
        '{"t":"offer","id":1,"name":"x","size":"1"}',
        '{"t":"offer","id":1,"name":"x","size":1,"mime":7}',
        '{"t":"accept","id":1.5}',
        '{"t":"ack","id":1}',
        '{"t":"ack","id":1,"n":-5}',
        '{"t":"nope","id":1}',
        '{"t":"done","id":1,"sha256":"xyz"}',
        '{"t":"received","id":1}',
        `{"t":"offer","id":1,"name":"${'x'.repeat(5000)}","size":1}`,
        '{"t":"offer","id":1,"name":"x","size":1'.padEnd(200, ' '),
      ]
      for (const g of garbage) far.send(g)
      const stale = [{ t: 'accept', id: 77 }, { t: 'ack', id: 77, n: 5 }, { t: 'cancel', id: 77 }, { t: 'received', id: 77, sha256: 'a'.repeat(64) }]
      for (const s of stale) far.send(s)
      far.send(new Uint8Array([0, 0, 1])) // too short for an id and a byte
      far.data(99, randomBytes(10)) // no such transfer
      far.send({ t: 'offer', id: 5, name: 'real', size: 3 })
      await until(() => offers.length > 0, 'the real offer')
      assert.deepEqual(receiver.stats(), { ignored: garbage.length, stale: stale.length, dropped: 2, declined: 0 })
      // Data before the accept is not taken either.
      far.data(5, randomBytes(3))
      await until(() => receiver.stats().dropped === 3, 'the early data dropped')
      const incoming = offers[0] as IncomingTransfer
      assert.equal(incoming.name, 'real')
      const sink = memorySink()
      incoming.accept(sink)
      await far.next({ t: 'accept', id: 5 })
      const bytes = randomBytes(3)
      far.data(5, bytes)
      far.send({ t: 'done', id: 5, sha256: hexSha256(bytes) })
      await far.next({ t: 'received', id: 5, sha256: hexSha256(bytes) })
      assert.equal(incoming.state, 'done')
      assert.ok(sameBytes(sink.bytes(), bytes))
      assert.equal(receiver.stats().dropped, 3)
    })

    it('declines offers over maxFileBytes, beyond maxPendingOffers, and all offers when nobody listens', async (t) => {
      const { receiver, far, offers } = await receiverAndRaw(t, { maxPendingOffers: 3, maxFileBytes: 1000 })
      far.send({ t: 'offer', id: 1, name: 'unheard', size: 10 })
      await far.next({ t: 'decline', id: 1, reason: 'declined' })
      receiver.on('offer', (incoming) => void offers.push(incoming))
      for (let id = 2; id <= 6; id++) far.send({ t: 'offer', id, name: `f${id}`, size: 10 })
      far.send({ t: 'offer', id: 7, name: 'huge', size: 1001 })
      await far.next({ t: 'decline', id: 7, reason: 'too-large' })
      assert.deepEqual(offers.map((o) => o.id), [2, 3, 4])
      for (const id of [5, 6]) await far.next({ t: 'decline', id, reason: 'busy' })
      // Answering one makes room for the next.
      offers[0]?.decline()
      far.send({ t: 'offer', id: 8, name: 'f8', size: 10 })
      await until(() => offers.length === 4, 'offer 8')
      assert.equal(offers[3]?.id, 8)
      // The sender cancels one of its offers before any answer: gone on this side too.
      const ended = new Promise<TransferEnd>((r) => offers[1]?.on('end', r))
      far.send({ t: 'cancel', id: 3 })
      assert.deepEqual(await ended, { state: 'cancelled', reason: 'cancelled', by: 'remote' })
      assert.deepEqual(receiver.stats(), { ignored: 0, stale: 0, dropped: 0, declined: 4 })
    })

    it("an accept's window and ack cadence count only as positive safe integers, and a cadence only with a window", () => {
      assert.deepEqual(parseControl('{"t":"accept","id":3,"window":262144,"ackEvery":1}'), { t: 'accept', id: 3, window: 262144, ackEvery: 1 })
      assert.deepEqual(parseControl('{"t":"accept","id":3,"window":262144}'), { t: 'accept', id: 3, window: 262144 })
      // Nonsense is left out, and the accept still counts: the sender then goes by the window alone, or the channel.
      for (const ackEvery of [0, -1, 1.5, '1', 2 ** 60, null]) {
        assert.deepEqual(parseControl(JSON.stringify({ t: 'accept', id: 3, window: 262144, ackEvery })), { t: 'accept', id: 3, window: 262144 }, `ackEvery ${ackEvery}`)
      }
      assert.deepEqual(parseControl('{"t":"accept","id":3,"ackEvery":1}'), { t: 'accept', id: 3 })
      assert.deepEqual(parseControl('{"t":"accept","id":3,"window":0,"ackEvery":1}'), { t: 'accept', id: 3 })
    })

    it('sanitizes names and media types, on the way out and on the way in', async (t) => {
      assert.equal(sanitizeName('../../etc/passwd'), '....etcpasswd')
      assert.equal(sanitizeName('C:\\Windows\\x.dll'), 'C:Windowsx.dll')
      assert.equal(sanitizeName('invoice\u202Efdp.exe'), 'invoicefdp.exe')
      assert.equal(sanitizeName('a\u0000b\nc\u007f\u0085d'), 'abcd')
      assert.equal(sanitizeName('  \t '), 'file')
      assert.equal(sanitizeName('..'), 'file')
      assert.equal(sanitizeName('/'), 'file')
      assert.equal(sanitizeName('\ud800x'), 'x')
      assert.equal(sanitizeName('é'.repeat(300)), 'é'.repeat(127))
      assert.equal(sanitizeName(`${'a'.repeat(253)}😀`), 'a'.repeat(253))
      assert.equal(new TextEncoder().encode(sanitizeName('😀'.repeat(100))).byteLength, 252)
      assert.equal(sanitizeMime('Text/Plain; charset=utf-8'), 'text/plain')
      assert.equal(sanitizeMime('<script>'), 'application/octet-stream')
      assert.equal(sanitizeMime(undefined), 'application/octet-stream')

      const { receiver, far, offers } = await receiverAndRaw(t)
      receiver.on('offer', (incoming) => void offers.push(incoming))
      far.send({ t: 'offer', id: 1, name: '../\u0007evil\u202E.sh', size: 1, mime: 'x' })
      await until(() => offers.length === 1, 'the offer')
      assert.deepEqual([offers[0]?.name, offers[0]?.mime], ['..evil.sh', 'application/octet-stream'])

      const { sender } = await twoSides(t)
      const out = sender.send(memorySource(randomBytes(1)), { name: 'a/b\u0000c', mime: 'IMAGE/PNG' })
      assert.deepEqual([out.name, out.mime], ['abc', 'image/png'])
    })

    it('refuses bad options and bad sends with typed errors', async (t) => {
      const { a } = await openPair(t)
      for (const bad of [{ chunkBytes: 10 }, { maxPendingOffers: 0 }, { maxFileBytes: -1 }, { highWaterMark: 1.5 }, { receiveWindow: 100 }]) {
        assert.throws(() => new FileTransfers({ channel: a.fileChannel, ...bad }), (e: unknown) => isMallaError(e, 'BAD_INPUT'), JSON.stringify(bad))
      }
      const transfers = new FileTransfers({ channel: a.fileChannel })
      assert.throws(() => transfers.send(memorySource(randomBytes(1)), { name: 'x' }), (e: unknown) => isMallaError(e, 'PEER'), 'before start')
      transfers.start()
      t.after(() => transfers.stop())
      for (const size of [-1, 0.5, Number.NaN, 2 ** 53]) {
        assert.throws(() => transfers.send({ size, read: async () => new Uint8Array(1) }, { name: 'x' }), (e: unknown) => isMallaError(e, 'BAD_INPUT'), String(size))
      }
    })
  })
})
