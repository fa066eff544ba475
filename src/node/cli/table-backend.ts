import { hostname } from 'node:os'
import { MallaError } from '../../core/errors.js'
import { parseMultiWriterTable, parseTable } from '../../core/schema.js'
import type { Flavour, Json, TypeName } from '../../core/types.js'
import { Replica } from '../../replica/replica.js'
import { failedOutcome, syncTable, type SyncOutcome } from '../../sync/full-table-sync.js'
import { DaemonApiClient } from '../../transport/daemon-api-client.js'
import { FileStore } from '../storage/file-store.js'
import { nodeHttpPoster } from '../transport/node-http-poster.js'

/**
 * Where the CLI's table commands act: a running daemon (`--url`) or a data directory (`--data`),
 * which the CLI locks and writes itself, as LibreMesh's `shared-state` does with its files.
 * Every method returns the table's JSON text afterwards.
 */
export interface TableBackend {
  get(flavour: Flavour, type: TypeName): Promise<string>
  insert(flavour: Flavour, type: TypeName, values: Array<[string, Json]>, ttl?: number): Promise<string>
  remove(type: TypeName, keys: string[], ttl?: number): Promise<string>
  bleach(type: TypeName): Promise<string>
  /** Merges a remote table given as parsed JSON (what `reqsync` reads on stdin). */
  reqsync(flavour: Flavour, type: TypeName, remote: unknown): Promise<string>
  sync(flavour: Flavour, type: TypeName, urls: string[], timeoutMs: number): Promise<SyncOutcome[]>
}

export function dataDirBackend(dir: string, name = hostname()): TableBackend {
  // No journal: each CLI write leaves the file holding the whole table, as LibreMesh's CLI does.
  const replica = new Replica({ store: new FileStore(dir, { journal: false }), author: name })
  return {
    get: async (flavour, type) => (await replica.read({ flavour, type })).text,
    insert: async (flavour, type, values, ttl) =>
      (flavour === 'ttl' ? await replica.insert(type, values, ttl) : await replica.insertMultiWriter(type, values)).text,
    remove: async (type, keys, ttl) => (await replica.remove(type, keys, ttl)).text,
    bleach: async (type) => (await replica.bleach(type)).text,
    reqsync: async (flavour, type, remote) =>
      (flavour === 'ttl'
        ? await replica.merge(type, parseTable(remote, 'stdin'))
        : await replica.mergeMultiWriter(type, parseMultiWriterTable(remote, 'stdin'))
      ).text,
    async sync(flavour, type, urls, timeoutMs) {
      if (urls.length === 0) throw new MallaError('BAD_INPUT', 'with --data, give the endpoint URLs to sync with (http://HOST/cgi-bin/shared-state/TYPE)')
      const ref = { flavour, type }
      return Promise.all(
        urls.map((url) =>
          syncTable(replica, ref, url, { poster: nodeHttpPoster, timeoutMs }).catch((e: unknown) => failedOutcome(url, e)),
        ),
      )
    },
  }
}

export function daemonBackend(url: string): TableBackend {
  const client = new DaemonApiClient(url)
  const endpoint = (flavour: Flavour, type: TypeName) =>
    `${url.replace(/\/+$/, '')}/cgi-bin/${flavour === 'ttl' ? 'shared-state' : 'shared-state-multiwriter'}/${type}`
  return {
    get: (flavour, type) => client.get(flavour, type),
    insert: (flavour, type, values, ttl) => client.insert(flavour, type, Object.fromEntries(values), ttl),
    remove: (type, keys, ttl) => client.remove(type, keys, ttl),
    bleach: (type) => client.bleach(type),
    async reqsync(flavour, type, remote) {
      // Exactly what a neighbour does: POST our table to the daemon's LibreMesh endpoint.
      const body = new TextEncoder().encode(JSON.stringify(remote))
      const reply = await nodeHttpPoster.post({
        url: endpoint(flavour, type),
        body,
        headers: { 'content-type': 'application/json' },
        timeoutMs: 10_000,
        maxReplyBytes: 64 * 1024 * 1024,
      })
      const text = new TextDecoder().decode(reply.body).trim()
      if (reply.status !== 200) {
        let message = `HTTP ${reply.status}`
        try {
          message = (JSON.parse(text) as { error: { message: string } }).error.message
        } catch {}
        throw new MallaError(reply.status === 413 ? 'TOO_LARGE' : reply.status < 500 ? 'BAD_INPUT' : 'PEER', message)
      }
      return text
    },
    sync: async (flavour, type, urls) => JSON.parse(await client.sync(flavour, type, urls)) as SyncOutcome[],
  }
}
