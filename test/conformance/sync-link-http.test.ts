import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MallaError } from '../../src/core/errors.js'
import { silentLogger } from '../../src/core/log.js'
import { DEFAULTS, PeerDaemon } from '../../src/node/daemon/peer-daemon.js'
import { nodeHttpPoster } from '../../src/node/transport/node-http-poster.js'
import { HttpLink } from '../../src/sync/links/http-link.js'
import type { HttpPoster } from '../../src/transport/http-poster.js'
import { syncLinkSuite, type SuiteNode, type SyncLinkFixture } from './sync-link-suite.js'

/**
 * The HTTP link between real daemons: each node is a PeerDaemon on loopback (its HTTP routes answer), and the
 * suite's engines reach the others through HttpLinks. A cut makes the poster fail: a neighbour out of reach.
 */
async function httpFixture(): Promise<SyncLinkFixture> {
  const daemons = new Map<SuiteNode, PeerDaemon>()
  const dirs: string[] = []
  const servers: Server[] = []
  const timeoutMs = 1_000
  return {
    async node(name) {
      const dir = await mkdtemp(join(tmpdir(), 'malla-link-'))
      dirs.push(dir)
      const daemon = new PeerDaemon({ ...DEFAULTS, port: 0, host: '127.0.0.1', dataDir: dir, hooksDir: `${dir}/hooks`, name, peers: [], log: silentLogger })
      await daemon.start()
      const node = { name, replica: daemon.replica }
      daemons.set(node, daemon)
      return node
    },
    async connect(a, b) {
      let cut = false
      const poster: HttpPoster = {
        post: (request) => (cut ? Promise.reject(new MallaError('PEER', `POST ${request.url} failed: cut`)) : nodeHttpPoster.post(request)),
      }
      const url = (n: SuiteNode) => (daemons.get(n) as PeerDaemon).url
      const ab = new HttpLink({ base: url(b), poster, timeoutMs, ownName: a.name })
      const ba = new HttpLink({ base: url(a), poster, timeoutMs, ownName: b.name })
      return { ab, ba, cut: () => void (cut = true), heal: () => void (cut = false) }
    },
    async garbage(node) {
      // Speaks malla (it says so), and answers every request with entries that are not entries.
      const server = createServer((req, res) => {
        req.resume()
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json', 'x-malla': '1' })
          res.end(req.url?.includes('reconcile') ? '{"v":1,"entries":{"planted":{"data":1}}}' : '{"planted":{"data":1,"author":"x","bleachTTL":"never"}}')
        })
      })
      servers.push(server)
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const link = new HttpLink({ base: `http://127.0.0.1:${(server.address() as { port: number }).port}`, poster: nodeHttpPoster, timeoutMs, ownName: 'garbage' })
      const target = (daemons.get(node) as PeerDaemon).url.replace(/\/$/, '')
      return {
        link,
        async attack() {
          const bodies: Array<[string, string]> = [
            ['/cgi-bin/shared-state/suite', '{"planted":{"data":1,"author":"x","bleachTTL":-1}}'],
            ['/cgi-bin/shared-state/suite', `${'['.repeat(5000)}${']'.repeat(5000)}`],
            ['/cgi-bin/shared-state/..%2f..%2fetc', '{}'],
            ['/malla/v1/reconcile', '{"v":1,"flavour":"ttl","type":"suite","buckets":16,"digests":"zz"}'],
            ['/cgi-bin/shared-state/suite', 'not json at all'],
          ]
          for (const [path, body] of bodies) await fetch(`${target}${path}`, { method: 'POST', body, headers: { 'x-malla-name': 'garbage' } }).then((r) => r.text())
        },
      }
    },
    async teardown() {
      for (const s of servers) s.close()
      await Promise.allSettled([...daemons.values()].map((d) => d.stop()))
      await Promise.allSettled(dirs.map((d) => rm(d, { recursive: true, force: true })))
    },
  }
}

syncLinkSuite('HTTP link between daemons', httpFixture)
