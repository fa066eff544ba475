import { signal } from '@preact/signals'
import { safeStorage } from '../i18n.js'

const KEY = 'malla.verified'
/** Verified people kept, at most: the list lives in localStorage, which is small. */
const MAX_CONTACTS = 500

/**
 * The people this person has verified, by the fingerprint of their key (compared in person: the code both see
 * must be the same), with the name they had then. Kept in this browser only.
 */
export class Contacts {
  readonly verified = signal<ReadonlyMap<string, string>>(read())

  isVerified(fingerprint: string | undefined): boolean {
    return fingerprint !== undefined && this.verified.value.has(fingerprint)
  }

  verify(fingerprint: string, name: string): void {
    const next = new Map(this.verified.value)
    next.delete(fingerprint)
    next.set(fingerprint, name.slice(0, 64))
    while (next.size > MAX_CONTACTS) next.delete(next.keys().next().value as string)
    this.save(next)
  }

  forget(fingerprint: string): void {
    const next = new Map(this.verified.value)
    next.delete(fingerprint)
    this.save(next)
  }

  private save(next: Map<string, string>): void {
    this.verified.value = next
    safeStorage()?.setItem(KEY, JSON.stringify([...next]))
  }
}

function read(): Map<string, string> {
  try {
    const parsed: unknown = JSON.parse(safeStorage()?.getItem(KEY) ?? '[]')
    if (!Array.isArray(parsed)) return new Map()
    return new Map(parsed.filter((e): e is [string, string] => Array.isArray(e) && /^[0-9A-F]{40}$/.test(String(e[0])) && typeof e[1] === 'string').slice(-MAX_CONTACTS))
  } catch {
    return new Map()
  }
}

/** A fingerprint as people read it aloud: ten groups of four, as GnuPG prints it. */
export function groupedFingerprint(fingerprint: string): string {
  return fingerprint.replace(/(.{4})(?=.)/g, '$1 ')
}

/** The short code two people compare in person: the fingerprint's first 16 digits (GnuPG's long key id), in groups. */
export function shortCode(fingerprint: string): string {
  return groupedFingerprint(fingerprint.slice(0, 16))
}
