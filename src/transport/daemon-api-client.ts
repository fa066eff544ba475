import { isErrorCode, MallaError } from '../core/errors.js'
import type { Flavour, TypeName } from '../core/types.js'

/**
 * A client of a malla daemon's `/malla/v1/` API: what the CLI's `--url` mode and pages use to read and
 * write a router's tables. Error replies carry `{error: {code, message}}`, rethrown with the same code.
 */
export class DaemonApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly timeoutMs = 10_000,
  ) {}

  private url(flavour: Flavour, type: TypeName, action?: string): string {
    const base = this.baseUrl.replace(/\/+$/, '')
    return `${base}/malla/v1/${flavour === 'ttl' ? 'tables' : 'multiwriter'}/${type}${action ? `/${action}` : ''}`
  }

  get(flavour: Flavour, type: TypeName): Promise<string> {
    return this.call('GET', this.url(flavour, type))
  }

  insert(flavour: Flavour, type: TypeName, values: unknown, ttl?: number): Promise<string> {
    return this.call('POST', this.url(flavour, type, 'insert') + (ttl === undefined ? '' : `?ttl=${ttl}`), values)
  }

  remove(type: TypeName, keys: readonly string[], ttl?: number): Promise<string> {
    return this.call('POST', this.url('ttl', type, 'remove') + (ttl === undefined ? '' : `?ttl=${ttl}`), keys)
  }

  bleach(type: TypeName): Promise<string> {
    return this.call('POST', this.url('ttl', type, 'bleach'))
  }

  /** Asks the daemon to sync a table with these endpoint URLs (its own peers when empty). */
  sync(flavour: Flavour, type: TypeName, urls: readonly string[]): Promise<string> {
    return this.call('POST', this.url(flavour, type, 'sync'), urls)
  }

  /** The daemon's name and what it knows of its neighbours. */
  info(): Promise<string> {
    return this.call('GET', `${this.baseUrl.replace(/\/+$/, '')}/malla/v1/info`)
  }

  private async call(method: 'GET' | 'POST', url: string, body?: unknown): Promise<string> {
    let res: Response
    try {
      res = await fetch(url, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      })
    } catch (e) {
      throw new MallaError('PEER', `cannot reach the daemon at ${url}: ${(e as Error).message}`, { cause: e })
    }
    const text = await res.text()
    if (res.ok) return text
    let error: { code?: string; message?: string } | undefined
    try {
      error = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error
    } catch {
      error = undefined
    }
    const code = isErrorCode(error?.code) ? error.code : 'PEER'
    throw new MallaError(code, error?.message ?? `${method} ${url} answered HTTP ${res.status}`)
  }
}
