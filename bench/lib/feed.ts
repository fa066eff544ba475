/**
 * A client of a daemon's change feed (`GET /malla/v1/events`, docs/protocol.md §10) that notes when each
 * key first arrived, by this process's monotonic clock, so a benchmark can time a change across a mesh.
 */

/** Milliseconds on the same monotonic clock as `process.hrtime.bigint()`. */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6

interface ChangeData {
  readonly keys?: unknown
  readonly entries?: Record<string, unknown>
}

export class ChangeFeed {
  /** Key → when (nowMs) the first event holding it with an entry (not a deletion) arrived. */
  readonly firstSeen = new Map<string, number>()
  /** Change events received. */
  events = 0
  /** Why the stream stopped, when it stopped before close(). */
  error: string | undefined
  private readonly waiters = new Set<() => void>()
  private readonly controller = new AbortController()
  private closed = false

  private constructor(readonly base: string) {}

  /** Connects and resolves once the feed's `hello` arrived, i.e. once every later change will be seen. */
  static async open(base: string, types: readonly string[], timeoutMs = 10_000): Promise<ChangeFeed> {
    const feed = new ChangeFeed(base)
    const query = types.length > 0 ? `?types=${types.map(encodeURIComponent).join(',')}` : ''
    const timer = setTimeout(() => feed.controller.abort(new Error(`no hello from ${base} within ${timeoutMs} ms`)), timeoutMs)
    try {
      const res = await fetch(`${base}/malla/v1/events${query}`, { signal: feed.controller.signal, headers: { accept: 'text/event-stream' } })
      if (res.status !== 200 || !res.body) throw new Error(`GET ${base}/malla/v1/events answered ${res.status}`)
      const signal = feed.controller.signal
      let onAbort: (() => void) | undefined
      const hello = new Promise<void>((resolve, reject) => {
        feed.onHello = resolve
        onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error(`feed of ${base} closed before hello`))
        signal.addEventListener('abort', onAbort, { once: true })
      })
      void feed.pump(res.body)
      try {
        await hello
      } finally {
        signal.removeEventListener('abort', onAbort as () => void)
        feed.onHello = undefined
      }
    } catch (e) {
      feed.close()
      throw e
    } finally {
      clearTimeout(timer)
    }
    return feed
  }

  private onHello: (() => void) | undefined

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder()
    let buffer = ''
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        const at = nowMs()
        buffer += decoder.decode(chunk, { stream: true })
        let cut: number
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut)
          buffer = buffer.slice(cut + 2)
          this.event(block, at)
        }
      }
      if (!this.closed) this.error = 'stream ended'
    } catch (e) {
      if (!this.closed) this.error = (e as Error).message
    }
    this.wake()
  }

  private event(block: string, at: number): void {
    let type = 'message'
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) type = line.slice(6).trim()
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
    }
    if (type === 'hello') {
      this.onHello?.()
      return
    }
    if (type !== 'change') return
    this.events++
    const parsed = JSON.parse(data.join('\n')) as ChangeData
    for (const [key, entry] of Object.entries(parsed.entries ?? {})) {
      if (entry !== null && !this.firstSeen.has(key)) this.firstSeen.set(key, at)
    }
    this.wake()
  }

  private wake(): void {
    for (const w of [...this.waiters]) w()
  }

  /** Resolves true as soon as `condition` holds (checked after every event), false after `timeoutMs` or if the stream stops. */
  waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    return waitOnWake(this.waiters, condition, timeoutMs, () => this.error !== undefined || this.closed)
  }

  /** When `key` first arrived (nowMs), waiting up to `timeoutMs`; undefined if it did not. */
  async arrival(key: string, timeoutMs: number): Promise<number | undefined> {
    await this.waitFor(() => this.firstSeen.has(key), timeoutMs)
    return this.firstSeen.get(key)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.controller.abort()
    this.wake()
  }
}

/**
 * Resolves true as soon as `condition` holds, re-checked each time the owner calls every function in
 * `waiters` (after each event it receives); false after `timeoutMs`, or as soon as `stopped()` holds.
 */
export function waitOnWake(waiters: Set<() => void>, condition: () => boolean, timeoutMs: number, stopped: () => boolean = () => false): Promise<boolean> {
  if (condition()) return Promise.resolve(true)
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer)
      waiters.delete(check)
      resolve(ok)
    }
    const check = () => {
      if (condition()) done(true)
      else if (stopped()) done(false)
    }
    const timer = setTimeout(() => done(condition()), timeoutMs)
    waiters.add(check)
  })
}
