import { randomBytes } from 'node:crypto'
import { syncWithAsyncPeer } from '../../src/node/async/async-exchange.js'
import { EMPTY_SLICE, type AsyncEntry } from '../../src/sync/async/state-slice.js'

/**
 * A stand-in for a LibreMesh router's rpcd behind uhttpd's `/ubus` (JSON-RPC 2.0), reduced to what LibreMesh
 * configures for lime-app, as its packages ship it:
 * - `unauthenticated` (the null session) may call `session.login` (lime-app's `95-lime-app-rpc-acl`);
 * - the `lime-app` login, password `generic` (`90_lime-app` stores its md5-crypt `$1$$ta3C2yX4TvVObdaJyQ9Md1`),
 *   is granted the `lime-app` ACL group, which may call `shared-state-async` `*` (`acl.d/shared-state-async.json`);
 * - rpcd's `shared-state-async` script answers `get {data_type}` with `{"data": <output of shared-state-async get
 *   TYPE>, "error": <its status>}`, and that CLI reads the type from the daemon on this router (a sync of an empty
 *   state with 127.0.0.1:3490, here `asyncPort`), printing `{key: data}`; `{}` when the type is unknown there.
 * Anything else is refused as uhttpd refuses it: -32002 "Access denied", -32000 "Object not found".
 */
export interface RpcdDoubleOptions {
  /** The router's shared-state-async daemon. */
  readonly asyncPort: number
  /** Sessions expire after this long without use (rpcd: 300 s). */
  readonly sessionTimeoutMs?: number
}

const NULL_SESSION = '00000000000000000000000000000000'

export class RpcdDouble {
  readonly sessions = new Map<string, number>()
  calls = 0
  logins = 0

  constructor(private readonly options: RpcdDoubleOptions) {}

  /** Answers one POST /ubus body. */
  async answer(body: string): Promise<string> {
    let request: { id?: unknown; method?: unknown; params?: unknown }
    try {
      request = JSON.parse(body) as typeof request
    } catch {
      return JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } })
    }
    const id = request.id ?? null
    const reply = (result: unknown) => JSON.stringify({ jsonrpc: '2.0', id, result })
    const error = (code: number, message: string) => JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } })
    const params = request.params
    if (request.method !== 'call' || !Array.isArray(params) || params.length < 3) return error(-32600, 'Invalid request')
    const [session, object, method, args = {}] = params as [unknown, unknown, unknown, unknown]
    if (object === 'session' && method === 'login' && session === NULL_SESSION) {
      const a = args as { username?: unknown; password?: unknown }
      if (a.username !== 'lime-app' || a.password !== 'generic') return reply([6])
      this.logins++
      const s = randomBytes(16).toString('hex')
      this.sessions.set(s, Date.now())
      return reply([0, { ubus_rpc_session: s, timeout: 300, expires: 300, acls: { ubus: { 'shared-state-async': ['*'], session: ['access', 'login'] } }, data: { username: 'lime-app' } }])
    }
    const seen = typeof session === 'string' ? this.sessions.get(session) : undefined
    if (seen === undefined || Date.now() - seen > (this.options.sessionTimeoutMs ?? 300_000)) {
      if (typeof session === 'string') this.sessions.delete(session)
      return error(-32002, 'Access denied')
    }
    this.sessions.set(session as string, Date.now())
    if (object !== 'shared-state-async') return error(-32002, 'Access denied')
    if (method !== 'get') return reply([3])
    this.calls++
    const type = (args as { data_type?: unknown }).data_type
    if (typeof type !== 'string') return reply([0, { data: {}, error: 1 }])
    try {
      return reply([0, { data: await this.get(type), error: 0 }])
    } catch {
      return reply([0, { data: {}, error: 1 }])
    }
  }

  /** `shared-state-async get TYPE`: the CLI syncs its empty state with the local daemon and prints key → data. */
  private async get(type: string): Promise<Record<string, unknown>> {
    let got: ReadonlyMap<string, AsyncEntry> = new Map()
    await syncWithAsyncPeer(type, { serves: () => true, stateOf: async () => EMPTY_SLICE, merge: async (_t, slice) => void (got = slice) }, { host: '127.0.0.1', port: this.options.asyncPort, timeoutMs: 5000 })
    return Object.fromEntries([...got].map(([k, e]) => [k, e.data]))
  }
}
