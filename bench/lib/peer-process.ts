import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

/** A process of Node peers that speaks JSON lines (test/e2e/fixtures/node-peer.ts, bench/lib/room-host.ts): its lines, and waits on them. */
export class PeerProcess {
  readonly lines: Array<Record<string, unknown>> = []
  private readonly wakers = new Set<() => void>()
  id = ''

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
  ) {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        return
      }
      for (const wake of [...this.wakers]) wake()
    })
    child.stderr?.resume()
  }

  send(command: string): void {
    this.child.stdin?.write(`${command}\n`)
  }

  /** The first line (after `from`) that `match` accepts, within `ms`. */
  waitFor(match: (line: Record<string, unknown>) => boolean, ms: number, what: string, from = 0): Promise<Record<string, unknown>> {
    const find = () => this.lines.slice(from).find(match)
    const found = find()
    if (found) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const wake = () => {
        const line = find()
        if (!line) return
        this.wakers.delete(wake)
        clearTimeout(timer)
        resolve(line)
      }
      const timer = setTimeout(() => {
        this.wakers.delete(wake)
        reject(new Error(`${this.label}: ${what} not within ${ms} ms`))
      }, ms)
      this.wakers.add(wake)
    })
  }

  async ask<T extends Record<string, unknown>>(command: string, event: string): Promise<T> {
    const from = this.lines.length
    this.send(command)
    return (await this.waitFor((l) => l.event === event, 10_000, `an answer to ${command}`, from)) as T
  }
}
