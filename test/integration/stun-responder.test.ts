import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { test } from 'node:test'
import { RTCPeerConnection } from 'werift'
import { DEFAULTS } from '../../src/node/daemon/peer-daemon.js'
import { inProcessDaemon } from '../helpers/in-process-daemon.js'
import { startDaemon, tempDir, type RunningDaemon } from '../helpers/processes.js'

// Requests and answers are built and read by hand here, not with the `stun` package the responder uses,
// so that a bug in that codec cannot hide itself.
const COOKIE = 0x2112a442
const BINDING_REQUEST = 0x0001
const BINDING_SUCCESS = 0x0101
const XOR_MAPPED_ADDRESS = 0x0020

function header(type: number, length: number, transaction: Buffer, cookie = COOKIE): Buffer {
  const b = Buffer.alloc(20)
  b.writeUInt16BE(type, 0)
  b.writeUInt16BE(length, 2)
  b.writeUInt32BE(cookie, 4)
  transaction.copy(b, 8)
  return b
}

const bindingRequest = (transaction: Buffer) => header(BINDING_REQUEST, 0, transaction)

/** The XOR-MAPPED-ADDRESS of a Binding success answer to `transaction` (RFC 5389 §15.2). */
function mappedAddress(answer: Buffer, transaction: Buffer): { address: string; port: number } {
  assert.equal(answer.readUInt16BE(0), BINDING_SUCCESS, 'a Binding success response')
  assert.equal(answer.readUInt32BE(4), COOKIE)
  assert.ok(answer.subarray(8, 20).equals(transaction), 'the request\'s transaction ID')
  assert.equal(answer.readUInt16BE(2), answer.length - 20, 'the length field covers the attributes')
  for (let at = 20; at + 4 <= answer.length; ) {
    const type = answer.readUInt16BE(at)
    const length = answer.readUInt16BE(at + 2)
    const value = answer.subarray(at + 4, at + 4 + length)
    if (type === XOR_MAPPED_ADDRESS) {
      const port = value.readUInt16BE(2) ^ (COOKIE >>> 16)
      const mask = Buffer.alloc(16)
      mask.writeUInt32BE(COOKIE)
      transaction.copy(mask, 4)
      const raw = Buffer.from(value.subarray(4).map((byte, i) => byte ^ mask[i]!))
      if (value[1] === 1) return { address: [...raw].join('.'), port }
      assert.equal(value[1], 2, 'family IPv4 (1) or IPv6 (2)')
      const groups = Array.from({ length: 8 }, (_, i) => raw.readUInt16BE(i * 2).toString(16))
      return { address: compressIPv6(groups.join(':')), port }
    }
    at += 4 + Math.ceil(length / 4) * 4
  }
  throw new Error(`no XOR-MAPPED-ADDRESS in ${answer.toString('hex')}`)
}

function compressIPv6(full: string): string {
  const best = [...full.matchAll(/(?:^|:)0(?::0)+(?::|$)/g)].sort((a, b) => b[0].length - a[0].length)[0]
  return best ? full.replace(best[0], '::') : full
}

/** A client socket whose datagrams can be awaited one by one, each within a time bound. */
async function client(t: { after(fn: () => unknown): void }, host: '127.0.0.1' | '::1') {
  const socket: Socket = createSocket(host === '::1' ? 'udp6' : 'udp4')
  t.after(() => new Promise<void>((resolve) => socket.close(() => resolve())))
  await new Promise<void>((resolve) => socket.bind(0, host, resolve))
  const inbox: Buffer[] = []
  const waiters: Array<() => void> = []
  socket.on('message', (m) => {
    inbox.push(m)
    waiters.splice(0).forEach((w) => w())
  })
  return {
    port: socket.address().port,
    send: (payload: Buffer, port: number) => new Promise<void>((resolve, reject) => socket.send(payload, port, host, (e) => (e ? reject(e) : resolve()))),
    next: async (timeoutMs = 5000): Promise<Buffer> => {
      const deadline = Date.now() + timeoutMs
      while (inbox.length === 0) {
        if (Date.now() > deadline) throw new Error(`no STUN answer within ${timeoutMs} ms`)
        await new Promise<void>((resolve) => {
          waiters.push(resolve)
          setTimeout(resolve, 100)
        })
      }
      return inbox.shift()!
    },
  }
}

interface Info {
  stun: { port: number; answered: number; ignored: number } | null
}

async function info(d: RunningDaemon): Promise<Info> {
  const res = await fetch(`${d.base}/malla/v1/info`, { signal: AbortSignal.timeout(5000) })
  assert.equal(res.status, 200)
  return (await res.json()) as Info
}

/** The daemon's STUN port, as it logs it and as `/malla/v1/info` tells pages. */
async function stunPort(d: RunningDaemon): Promise<number> {
  const line = await d.waitForLog(/ stun listening urls=/)
  const logged = Number(/urls=stun:\S+:(\d+)$/.exec(line)?.[1])
  const told = (await info(d)).stun?.port
  assert.equal(told, logged, 'info and log agree')
  return logged
}

test('a Binding request over IPv4 is answered with the client socket\'s own address and port', { timeout: 30_000 }, async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  const port = await stunPort(d)
  const c = await client(t, '127.0.0.1')
  const transaction = randomBytes(12)
  await c.send(bindingRequest(transaction), port)
  assert.deepEqual(mappedAddress(await c.next(), transaction), { address: '127.0.0.1', port: c.port })
  assert.equal((await info(d)).stun?.answered, 1)
})

test('a Binding request over IPv6 is answered with the client\'s IPv6 address', { timeout: 30_000 }, async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--host', '::1'])
  const port = await stunPort(d)
  const c = await client(t, '::1')
  const transaction = randomBytes(12)
  await c.send(bindingRequest(transaction), port)
  assert.deepEqual(mappedAddress(await c.next(), transaction), { address: '::1', port: c.port })
})

test('on a dual-stack socket (--host ::) an IPv4 client is told its IPv4 address, not ::ffff:a.b.c.d', { timeout: 30_000 }, async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--host', '::'])
  const port = await stunPort(d)
  const c = await client(t, '127.0.0.1')
  const transaction = randomBytes(12)
  await c.send(bindingRequest(transaction), port)
  assert.deepEqual(mappedAddress(await c.next(), transaction), { address: '127.0.0.1', port: c.port })
})

test('garbage, other STUN messages and huge datagrams get no answer and do not stop the responder', { timeout: 30_000 }, async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  const port = await stunPort(d)
  const c = await client(t, '127.0.0.1')
  const tx = () => randomBytes(12)
  const attribute = (type: number, value: Buffer) => Buffer.concat([Buffer.from([type >> 8, type & 255, value.length >> 8, value.length & 255]), value])
  const garbage: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['random bytes', randomBytes(200)],
    ['first byte 0-3 but no STUN', Buffer.from([0, 1, 2, 3, 4, 5, 6])],
    ['HTTP', Buffer.from('GET / HTTP/1.1\r\n\r\n')],
    ['RFC 3489 (no cookie)', header(BINDING_REQUEST, 0, tx(), 0x12345678)],
    ['length field too long', header(BINDING_REQUEST, 400, tx())],
    ['length not a multiple of 4', Buffer.concat([header(BINDING_REQUEST, 2, tx()), Buffer.alloc(2)])],
    ['Allocate request (TURN)', header(0x0003, 0, tx())],
    ['Binding indication', header(0x0011, 0, tx())],
    ['Binding success response', header(BINDING_SUCCESS, 0, tx())],
    ['Binding error response', header(0x0111, 0, tx())],
    ['attribute longer than the message', Buffer.concat([header(BINDING_REQUEST, 8, tx()), Buffer.from([0x80, 0x22, 0x01, 0x00, 1, 2, 3, 4])])],
    ['XOR-MAPPED-ADDRESS too short for its family', Buffer.concat([header(BINDING_REQUEST, 8, tx()), attribute(XOR_MAPPED_ADDRESS, Buffer.from([0, 2, 0, 0]))])],
    ['huge Binding request', Buffer.concat([header(BINDING_REQUEST, 65_000 - 20, tx()), Buffer.alloc(65_000 - 20)])],
    ['huge random', randomBytes(65_000)],
  ]
  for (const [, datagram] of garbage) await c.send(datagram, port)
  // Datagrams on loopback arrive in order, so the first answer must be to this request: none of the above got one.
  const transaction = randomBytes(12)
  await c.send(bindingRequest(transaction), port)
  assert.deepEqual(mappedAddress(await c.next(), transaction), { address: '127.0.0.1', port: c.port })
  const stun = (await info(d)).stun
  assert.deepEqual({ answered: stun?.answered, ignored: stun?.ignored }, { answered: 1, ignored: garbage.length })
  assert.equal(d.child.exitCode, null, 'the daemon is still running')
})

test('a STUN port in use is logged as an error and the daemon goes on serving HTTP', { timeout: 30_000 }, async (t) => {
  const taken = createSocket('udp4')
  t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())))
  await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', resolve))
  const port = taken.address().port
  const d = await startDaemon(t, ['--data', await tempDir(t), '--stun-port', String(port)])
  const line = await d.waitForLog(/ error .*stun responder not started/)
  assert.match(line, new RegExp(`127\\.0\\.0\\.1:${port}: the port is in use`))
  assert.equal((await info(d)).stun, null)
  const res = await fetch(`${d.base}/malla/v1/tables/demo/insert`, { method: 'POST', body: '{"k":"v"}', signal: AbortSignal.timeout(5000) })
  assert.equal(res.status, 200, 'writes still work')
})

test('--no-stun starts no responder', { timeout: 30_000 }, async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--no-stun'])
  assert.equal((await info(d)).stun, null)
  assert.ok(!d.log.some((l) => /stun/.test(l)), `nothing about STUN in the log:\n${d.log.join('\n')}`)
})

test('the responder starts and stops with the daemon, releasing its port', { timeout: 30_000 }, async (t) => {
  assert.equal(DEFAULTS.stunPort, 3478)
  const daemon = await inProcessDaemon(t, { name: 'S', stun: { port: 0 } })
  await daemon.start()
  const res = await fetch(new URL('malla/v1/info', daemon.url), { signal: AbortSignal.timeout(5000) })
  const port = ((await res.json()) as Info).stun?.port
  assert.ok(port !== undefined && port > 0)
  await daemon.stop()
  const again = createSocket('udp4')
  t.after(() => new Promise<void>((resolve) => again.close(() => resolve())))
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject)
    again.bind(port, '127.0.0.1', resolve)
  })
})

test('a werift peer given the daemon as its STUN server gathers a server-reflexive candidate', { timeout: 30_000 }, async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  const port = await stunPort(d)
  const pc = new RTCPeerConnection({
    iceServers: [{ urls: `stun:127.0.0.1:${port}` }],
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    // Seconds; bounds the wait should the responder not answer.
    iceStunGatherTimeout: 5,
  })
  t.after(() => pc.close())
  const candidates: string[] = []
  pc.onIceCandidate.subscribe((c) => c && candidates.push(c.candidate))
  const complete = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ICE gathering not complete within 15 s; candidates: ${candidates.join(' | ')}`)), 15_000)
    pc.iceGatheringStateChange.subscribe((state) => state === 'complete' && (clearTimeout(timer), resolve()))
  })
  pc.createDataChannel('probe')
  await pc.setLocalDescription(await pc.createOffer())
  await complete
  const srflx = candidates
    .map((c) => /^(?:candidate:)?\S+ \d+ udp \d+ (\S+) (\d+) typ srflx raddr (\S+) rport (\d+)/i.exec(c))
    .filter((m): m is RegExpExecArray => m !== null)
  assert.ok(srflx.length > 0, `a srflx candidate among: ${candidates.join(' | ')}`)
  // Its packets reached 127.0.0.1 from the socket's own port, which is what the responder must report.
  assert.ok(srflx.some((m) => m[1] === '127.0.0.1' && m[2] === m[4]), `srflx 127.0.0.1 on its host socket's port: ${candidates.join(' | ')}`)
  assert.ok(((await info(d)).stun?.answered ?? 0) >= 1)
})
