/** An address as a socket reports it, compared plainly: no IPv4-mapped prefix, no zone, lower case. */
export function normalizeAddress(address: string): string {
  return address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '').replace(/%.*$/, '').toLowerCase()
}

/** The host part of a neighbour's base URL (`http://[fe80::1%25br-lan]:8080` → `fe80::1`), normalised. */
export function baseAddress(base: string): string | undefined {
  const host = baseHost(base)
  return host === undefined ? undefined : normalizeAddress(host)
}

/** The host of a base URL as a socket connects to it, zone kept (`http://[fe80::1%25br-lan]:8080` → `fe80::1%br-lan`). */
export function baseHost(base: string): string | undefined {
  // Not WHATWG URL: it refuses the zone of a link-local address, which neighbours found on a link have.
  const m = /^https?:\/\/(?:\[([^\]]+)\]|([^/:?#]+))(?::\d+)?(?:[/?#]|$)/i.exec(base)
  return m ? (m[1] ?? m[2] ?? '').replace('%25', '%') : undefined
}
