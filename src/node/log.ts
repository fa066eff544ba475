import type { Logger } from '../core/log.js'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

function formatValue(value: unknown): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value)
  return s !== undefined && /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s ?? String(value))
}

/**
 * One line per event, `TIME LEVEL [NAME] message key=value ...` (logfmt-style fields), to stderr,
 * so stdout stays free for a command's JSON output.
 */
export function lineLogger(options: { level?: LogLevel; name?: string; write?: (line: string) => void } = {}): Logger {
  const min = RANK[options.level ?? 'info']
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'))
  const prefix = options.name ? ` [${options.name}]` : ''
  const log = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < min) return
    let line = `${new Date().toISOString()} ${level}${prefix} ${message}`
    for (const [k, v] of Object.entries(fields ?? {})) if (v !== undefined) line += ` ${k}=${formatValue(v)}`
    write(line)
  }
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }
}

/**
 * Bounds how many lines one source can make a logger write: anyone on the network can send requests that
 * are refused, and each refusal is worth a line only until it becomes a flood. Per key and per window,
 * `perWindow` lines pass; the next line that passes after a window in which some were held back says how many.
 */
export class LogThrottle {
  private readonly counts = new Map<string, { window: number; lines: number; held: number }>()

  constructor(
    private readonly perWindow = 10,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether a line for `key` may be written now; when it may, how many were held back before it. */
  allow(key: string): { ok: true; held: number } | { ok: false } {
    const window = Math.floor(this.now() / this.windowMs)
    let c = this.counts.get(key)
    if (c === undefined) {
      if (this.counts.size >= 1000) this.counts.clear() // many one-off keys: forget them rather than grow
      c = { window, lines: 0, held: 0 }
      this.counts.set(key, c)
    }
    if (c.window !== window) {
      c.window = window
      c.lines = 0
    }
    if (c.lines >= this.perWindow) {
      c.held++
      return { ok: false }
    }
    c.lines++
    const held = c.held
    c.held = 0
    return { ok: true, held }
  }
}
