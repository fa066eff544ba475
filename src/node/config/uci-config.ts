import { MallaError } from '../../core/errors.js'

/** One `config <type> [name]` section of a UCI file: its options, and its lists in order. */
export interface UciSection {
  readonly type: string
  readonly name: string | undefined
  readonly options: ReadonlyMap<string, string>
  readonly lists: ReadonlyMap<string, readonly string[]>
}

const IDENTIFIER = /^[A-Za-z0-9_]+$/

const bad = (file: string, line: number, message: string) => new MallaError('BAD_INPUT', `${file}:${line}: ${message}`)

/**
 * The words of one line, as UCI reads them: bare words, 'single-quoted' (no escapes), "double-quoted" (with
 * backslash escapes), adjacent pieces joined; `#` outside quotes starts a comment.
 */
function words(text: string, file: string, line: number): string[] {
  const out: string[] = []
  let i = 0
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i] as string)) i++
    if (i >= text.length || text[i] === '#') break
    let word = ''
    while (i < text.length && !/\s/.test(text[i] as string)) {
      const c = text[i] as string
      if (c === "'" || c === '"') {
        const end = c === "'" ? text.indexOf("'", i + 1) : closingDouble(text, i + 1)
        if (end < 0) throw bad(file, line, `unterminated ${c === "'" ? 'single' : 'double'} quote`)
        const inner = text.slice(i + 1, end)
        word += c === "'" ? inner : inner.replace(/\\(.)/g, '$1')
        i = end + 1
      } else if (c === '#') {
        break
      } else {
        word += c
        i++
      }
    }
    out.push(word)
  }
  return out
}

function closingDouble(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '\\') i++
    else if (text[i] === '"') return i
  }
  return -1
}

/**
 * Parses a UCI config file (OpenWrt's `/etc/config/<name>` syntax: `package`, `config`, `option`, `list`).
 * Throws BAD_INPUT naming the file and line for anything else: a router's operator edits this by hand.
 */
export function parseUci(text: string, file = 'config'): UciSection[] {
  const sections: Array<{ type: string; name: string | undefined; options: Map<string, string>; lists: Map<string, string[]> }> = []
  text.split('\n').forEach((raw, index) => {
    const line = index + 1
    const w = words(raw, file, line)
    if (w.length === 0) return
    const [keyword, ...rest] = w as [string, ...string[]]
    if (keyword === 'package') return
    if (keyword === 'config') {
      const [type, name, extra] = rest
      if (type === undefined || !IDENTIFIER.test(type)) throw bad(file, line, `config needs a section type of [A-Za-z0-9_], e.g. config malla 'main'`)
      if (name !== undefined && !IDENTIFIER.test(name)) throw bad(file, line, `bad section name ${JSON.stringify(name)}: use [A-Za-z0-9_]`)
      if (extra !== undefined) throw bad(file, line, `unexpected ${JSON.stringify(extra)} after the section name`)
      sections.push({ type, name, options: new Map(), lists: new Map() })
      return
    }
    if (keyword !== 'option' && keyword !== 'list') throw bad(file, line, `unknown keyword ${JSON.stringify(keyword)}: expected config, option or list`)
    const section = sections[sections.length - 1]
    if (section === undefined) throw bad(file, line, `${keyword} before any config line`)
    const [name, value, extra] = rest
    if (name === undefined || !IDENTIFIER.test(name)) throw bad(file, line, `${keyword} needs a name of [A-Za-z0-9_]`)
    if (value === undefined) throw bad(file, line, `${keyword} ${name} has no value`)
    if (extra !== undefined) throw bad(file, line, `unexpected ${JSON.stringify(extra)} after the value of ${name} (quote a value with spaces)`)
    if (keyword === 'option') section.options.set(name, value)
    else section.lists.set(name, [...(section.lists.get(name) ?? []), value])
  })
  return sections
}

/** UCI options of a `config malla` section and the `malla peer` flag each one gives. */
export const PEER_OPTIONS: Readonly<Record<string, string>> = {
  port: '--port',
  host: '--host',
  data: '--data',
  name: '--name',
  hooks: '--hooks',
  stun_port: '--stun-port',
  discover_port: '--discover-port',
  discover_interval: '--discover-interval',
  bleach_interval: '--bleach-interval',
  sync_interval: '--sync-interval',
  timeout: '--timeout',
  hook_timeout: '--hook-timeout',
  max_body: '--max-body',
  source_rate: '--source-rate',
  source_burst: '--source-burst',
  neighbour_rate: '--neighbour-rate',
  neighbour_burst: '--neighbour-burst',
  mode: '--mode',
  memory: '--memory',
  types: '--types',
  async_port: '--async-port',
  async_types: '--async-types',
}

/** UCI lists and their repeatable flags. */
export const PEER_LISTS: Readonly<Record<string, string>> = { peer: '--peer', discover: '--discover', api_allow: '--api-allow', async_peer: '--async-peer' }

/** Options read by the init script or mapped to a switch rather than a flag with a value. */
const SWITCHES = new Set(['enabled', 'stun', 'log'])

const bool = (value: string, what: string): boolean => {
  if (['1', 'on', 'true', 'yes', 'enabled'].includes(value)) return true
  if (['0', 'off', 'false', 'no', 'disabled'].includes(value)) return false
  throw new MallaError('BAD_INPUT', `${what}: expected 0 or 1, not ${JSON.stringify(value)}`)
}

/** What a malla config file says: whether the daemon is enabled, and the `malla peer` flags it gives. */
export interface PeerConfig {
  readonly enabled: boolean
  readonly args: readonly string[]
}

/**
 * The `malla peer` flags of the first `config malla` section of a UCI file (values are checked by the flags'
 * own parsers afterwards, as if typed). An unknown option is an error, not ignored: a misspelt `option prot`
 * would otherwise leave the daemon on its default port without a word.
 */
export function peerConfig(text: string, file = 'config'): PeerConfig {
  const section = parseUci(text, file).find((s) => s.type === 'malla')
  if (section === undefined) throw new MallaError('BAD_INPUT', `${file}: no "config malla" section`)
  const args: string[] = []
  for (const [name, value] of section.options) {
    const flag = PEER_OPTIONS[name]
    if (flag !== undefined) args.push(flag, value)
    else if (name === 'stun') {
      if (!bool(value, `${file}: option stun`)) args.push('--no-stun')
    } else if (name === 'log') {
      if (value === 'quiet') args.push('--quiet')
      else if (value === 'verbose') args.push('--verbose')
      else if (value !== 'info') throw new MallaError('BAD_INPUT', `${file}: option log: expected quiet, info or verbose, not ${JSON.stringify(value)}`)
    } else if (!SWITCHES.has(name)) {
      throw new MallaError('BAD_INPUT', `${file}: unknown option ${JSON.stringify(name)} (known: ${[...Object.keys(PEER_OPTIONS), ...SWITCHES].join(', ')}; lists: ${Object.keys(PEER_LISTS).join(', ')})`)
    }
  }
  for (const [name, values] of section.lists) {
    const flag = PEER_LISTS[name]
    if (flag === undefined) throw new MallaError('BAD_INPUT', `${file}: unknown list ${JSON.stringify(name)} (known: ${Object.keys(PEER_LISTS).join(', ')})`)
    for (const value of values) args.push(flag, value)
  }
  const enabled = section.options.has('enabled') ? bool(section.options.get('enabled') as string, `${file}: option enabled`) : true
  return { enabled, args }
}
