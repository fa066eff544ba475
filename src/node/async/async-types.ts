import { MallaError } from '../../core/errors.js'
import { isTypeName } from '../../core/schema.js'
import { ASYNC_NAME_MAX_BYTES } from '../../sync/async/async-frames.js'

/**
 * The types LibreMesh registers with shared-state-async (`shared-state.<section>=dataType` in its packages'
 * uci-defaults), with their update interval in seconds: how often a C++ node pushes each to its neighbours.
 */
export const LIBREMESH_ASYNC_TYPES: ReadonlyMap<string, number> = new Map([
  ['bat-hosts', 30],
  ['node_info', 33],
  ['node_info_ref', 50],
  ['wifi_links_info', 33],
  ['wifi_links_info_ref', 50],
  ['bat_links_info', 30],
  ['bat_links_info_ref', 50],
  ['babel_links_info', 30],
  ['babel_links_info_ref', 50],
  ['net-stats', 120],
])

/** The update interval given to a type LibreMesh does not register. */
export const DEFAULT_ASYNC_UPDATE_SECONDS = 30

/**
 * Parses `--async-types`: names, each optionally `name:seconds` (its update interval), separated by commas.
 * An empty list is allowed (serve nothing but what is named later). Throws BAD_INPUT naming the bad item.
 */
export function parseAsyncTypes(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const raw of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const [name = '', seconds] = raw.split(':', 2)
    if (!isTypeName(name) || new TextEncoder().encode(name).length > ASYNC_NAME_MAX_BYTES) {
      throw new MallaError('BAD_INPUT', `--async-types: ${JSON.stringify(name)} is not a type name (letters, digits, _ and -, at most ${ASYNC_NAME_MAX_BYTES} bytes)`)
    }
    const interval = seconds === undefined ? (LIBREMESH_ASYNC_TYPES.get(name) ?? DEFAULT_ASYNC_UPDATE_SECONDS) : Number(seconds)
    if (!Number.isInteger(interval) || interval < 1 || interval > 86_400) throw new MallaError('BAD_INPUT', `--async-types: update interval of ${name} must be whole seconds from 1 to 86400, got ${JSON.stringify(seconds)}`)
    out.set(name, interval)
  }
  return out
}

/** `--async-peer host[:port]` (`[v6]:port` for IPv6): the address and port of a shared-state-async daemon. */
export function parseAsyncPeer(text: string, defaultPort: number): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+(?:%[\w.-]+)?)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text.trim())
  const port = m?.[3] === undefined ? defaultPort : Number(m[3])
  if (!m || port < 1 || port > 65_535) throw new MallaError('BAD_INPUT', `--async-peer ${JSON.stringify(text)}: expected host, host:port or [IPv6]:port`)
  return { host: (m[1] ?? m[2]) as string, port }
}
