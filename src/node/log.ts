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
