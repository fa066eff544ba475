import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { Cleanup } from './cleanup.js'

/**
 * The floor of relaying a change along a chain on this machine: H + 1 plain Node processes on loopback, each an
 * HTTP server that reads a POSTed body, parses it (as any node must, to know it), forwards it at once to the
 * next one over a kept-alive connection, and answers `{}`. Nothing is stored or merged: what is left is the
 * cost of processes, sockets and HTTP, which a relaying daemon cannot go under. The last one reports each key
 * it got on a streaming GET, as a daemon's change feed does.
 */
const SCRIPT = `
const http = require('node:http')
const next = process.env.NEXT || ''
const agent = new http.Agent({ keepAlive: true })
const feeds = new Set()
http.createServer((req, res) => {
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('\\n')
    feeds.add(res)
    req.on('close', () => feeds.delete(res))
    return
  }
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const body = Buffer.concat(chunks)
    const keys = Object.keys(JSON.parse(body.toString()))
    if (next) {
      const out = http.request(next, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (r) => r.resume())
      out.on('error', () => {})
      out.end(body)
    }
    for (const f of feeds) f.write(keys.join(',') + '\\n')
    res.end('{}')
  })
}).listen(0, '127.0.0.1', function () { process.stdout.write('listening ' + this.address().port + '\\n') })
`

/** Milliseconds for each of `bodies` to cross `hops` relays, from the POST to the first to the last one's report. */
export async function relayFloor(cleanup: Cleanup, hops: number, bodies: ReadonlyArray<{ key: string; body: string }>, timeoutMs = 10_000): Promise<number[]> {
  const children: ChildProcess[] = []
  cleanup.add(`stop the relay floor chain H=${hops}`, () => children.forEach((c) => c.kill('SIGKILL')))
  const ports: number[] = []
  // From the far end back, so each knows where to forward.
  for (let i = hops; i >= 0; i--) {
    const next = i === hops ? '' : `http://127.0.0.1:${ports[0]}/relay`
    const child = spawn(process.execPath, ['-e', SCRIPT], { env: { ...process.env, NEXT: next }, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('a relay did not start within 10 s')), 10_000)
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', (line) => {
        clearTimeout(timer)
        resolve(Number(line.split(' ')[1]))
      })
    })
    ports.unshift(port)
  }
  const feed = await fetch(`http://127.0.0.1:${ports[hops]}/feed`)
  const reader = (feed.body as ReadableStream<Uint8Array>).getReader()
  const seen = new Map<string, number>()
  const waiters = new Map<string, (at: number) => void>()
  void (async () => {
    const decoder = new TextDecoder()
    let rest = ''
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }))
      if (done) return
      const at = performance.now()
      rest += decoder.decode(value, { stream: true })
      const lines = rest.split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) for (const key of line.split(',').filter(Boolean)) {
        seen.set(key, at)
        waiters.get(key)?.(at)
      }
    }
  })()
  const ms: number[] = []
  try {
    for (const { key, body } of bodies) {
      const arrived = new Promise<number | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), timeoutMs)
        waiters.set(key, (at) => (clearTimeout(timer), resolve(at)))
      })
      const t0 = performance.now()
      const posted = fetch(`http://127.0.0.1:${ports[0]}/relay`, { method: 'POST', body, headers: { 'content-type': 'application/json' } }).then((r) => r.text())
      const at = await arrived
      await posted
      if (at === undefined) throw new Error(`relay floor H=${hops}: ${key} did not arrive within ${timeoutMs} ms`)
      ms.push(at - t0)
      await new Promise((r) => setTimeout(r, 50))
    }
  } finally {
    await reader.cancel().catch(() => {})
    children.forEach((c) => c.kill('SIGKILL'))
  }
  return ms
}
