/**
 * A client of a LibreMesh router's ubus over HTTP (uhttpd's `/ubus`, JSON-RPC 2.0), logged in as lime-app does:
 * LibreMesh's rpcd config has a `lime-app` login (password `generic`, a public one) whose ACL allows
 * `shared-state-async` among others. Used where the router runs no malla daemon.
 */
const NO_SESSION = '00000000000000000000000000000000'
const LOGIN = { username: 'lime-app', password: 'generic' }
/** A router's answer for a whole shared-state type stays far below this; a bigger one is refused unread. */
const MAX_ANSWER_CHARS = 4 * 1024 * 1024
const TIMEOUT_MS = 10_000

export class UbusError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UbusError'
  }
}

export class UbusClient {
  private session: Promise<string> | undefined
  private id = 0

  constructor(private readonly endpoint: string) {}

  /** Calls `object.method(args)`; logs in first, and once more if the session expired. */
  async call(object: string, method: string, args: Record<string, unknown>): Promise<unknown> {
    const session = this.login()
    try {
      return await this.rpc([await session, object, method, args])
    } catch (e) {
      if (!(e instanceof UbusError) || !/access denied/i.test(e.message)) throw e
      // Calls made together all fail when their session expires: the first to see it logs in, the others share that.
      if (this.session === session) this.session = undefined
      return this.rpc([await this.login(), object, method, args])
    }
  }

  private login(): Promise<string> {
    this.session ??= this.rpc([NO_SESSION, 'session', 'login', LOGIN]).then((r) => {
      const s = (r as { ubus_rpc_session?: unknown } | undefined)?.ubus_rpc_session
      if (typeof s !== 'string' || !/^[0-9a-f]{32}$/.test(s)) throw new UbusError('the router\'s login answered no session')
      return s
    })
    this.session.catch(() => (this.session = undefined))
    return this.session
  }

  private async rpc(params: unknown[]): Promise<unknown> {
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS)
    try {
      const res = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: ++this.id, method: 'call', params }),
        signal: controller.signal,
      })
      if (!res.ok) throw new UbusError(`${this.endpoint} answered ${res.status}`)
      const text = await res.text()
      if (text.length > MAX_ANSWER_CHARS) throw new UbusError(`${this.endpoint} answered ${text.length} characters`)
      const reply = JSON.parse(text) as { result?: unknown; error?: { message?: unknown } }
      if (reply.error !== undefined) throw new UbusError(`ubus: ${String(reply.error.message ?? 'error')}`)
      // ubus answers [status] or [status, data]; 0 is success.
      const result = reply.result
      if (!Array.isArray(result) || result[0] !== 0) throw new UbusError(`ubus ${String(params[1])}.${String(params[2])} failed with status ${Array.isArray(result) ? String(result[0]) : '?'}`)
      return result[1]
    } finally {
      clearTimeout(timer)
    }
  }
}
