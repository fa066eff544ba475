/**
 * Pure helpers for LibreMesh-style neighbour discovery: parse what `ping ff02::1%IFACE` printed, drop this
 * host's own addresses, and turn the rest into neighbour base URLs. No I/O here, so it is unit-tested alone.
 */

/** One host that answered the all-nodes ping on an interface. */
export interface Responder {
  /** Canonical IPv6 text, without a zone (`fe80::c84d:9dff:fea0:1367`). */
  readonly address: string
  /** The interface it answered on: the zone printed by ping, else the interface pinged. */
  readonly iface: string
}

/**
 * Canonical text of an IPv6 address (lower case, zeros compressed as RFC 5952), without its zone;
 * undefined when it is not an IPv6 address. The same rule is applied to ping's output and to
 * `os.networkInterfaces()`, so the two compare equal.
 */
export function canonicalIpv6(text: string): string | undefined {
  const bare = text.trim().replace(/%.*$/, '').replace(/^\[|\]$/g, '')
  if (!bare.includes(':') || !/^[0-9a-fA-F:.]+$/.test(bare)) return undefined
  try {
    const host = new URL(`http://[${bare}]/`).hostname
    return host.slice(1, -1)
  } catch {
    return undefined
  }
}

export function isLinkLocal(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address)
}

/**
 * Addresses that answered in the output of `ping -6 ... -I IFACE ff02::1` (iputils or busybox), first
 * seen first, without duplicates. Recognised lines, as LibreMesh's awk script reads them (`$3 == "from"`):
 *   `64 bytes from fe80::1%eth0: icmp_seq=1 ttl=64 time=0.2 ms`   (iputils 2021+)
 *   `64 bytes from fe80::1: icmp_seq=1 ttl=64 time=0.2 ms`        (older iputils, busybox `seq=`)
 *   `64 bytes from host.lan (fe80::1%eth0): icmp_seq=1 ...`       (iputils with name resolution)
 * Everything else (the header, statistics, errors, DUP! marks) is ignored.
 */
export function parsePingResponders(output: string, iface: string): Responder[] {
  const out: Responder[] = []
  const seen = new Set<string>()
  for (const line of output.split(/\r?\n/)) {
    const m = /^\s*\d+ bytes from (?:\S+ \(([^)\s]+)\)|([^\s]+?)):? (?:icmp_)?seq=/.exec(line)
    if (!m) continue
    const raw = (m[1] ?? m[2] ?? '').replace(/:$/, '')
    const zone = /%([^%\s]+)$/.exec(raw)?.[1]
    const address = canonicalIpv6(raw)
    if (address === undefined) continue
    if (seen.has(address)) continue
    seen.add(address)
    out.push({ address, iface: zone ?? iface })
  }
  return out
}

/** Every address of this host, canonical, from the shape `os.networkInterfaces()` returns. */
export function ownAddresses(interfaces: Record<string, ReadonlyArray<{ readonly address: string }> | undefined>): Set<string> {
  const own = new Set<string>()
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      const c = canonicalIpv6(a.address)
      if (c !== undefined) own.add(c)
    }
  }
  return own
}

/**
 * The neighbour's base URL for the daemon: `http://[fe80::1%25eth0]:8080`. A link-local address needs its
 * zone (percent-encoded in a URL, RFC 6874); any other address is used as it is.
 */
export function neighbourBase(r: Responder, port: number): string {
  const host = isLinkLocal(r.address) ? `${r.address}%25${encodeURIComponent(r.iface)}` : r.address
  return `http://[${host}]:${port}`
}

/** Responders of one probe that are not this host: the neighbour candidates, as LibreMesh computes them. */
export function candidates(output: string, iface: string, own: ReadonlySet<string>): Responder[] {
  return parsePingResponders(output, iface).filter((r) => !own.has(r.address))
}
