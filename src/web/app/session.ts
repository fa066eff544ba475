import { batch, signal, type Signal } from '@preact/signals'
import { IdbKeyStore, joinRoom, type Room } from 'malla/browser'
import type { Identity, KeyStore } from 'malla/identity'
import { Chat } from './chat.js'
import { Contacts } from './contacts.js'
import { DirectMessages } from './direct-messages.js'
import { FileSharing } from './file-sharing.js'
import { People } from './people.js'

/**
 * A channel says it has room again once its queue is down to this (the library's default is 256 KiB): a sender
 * held back by a full channel resumes only when little is left ahead of the chat lines that share the
 * connection. (A file keeps no more than its receiver's window on the way: docs/protocol.md §16.)
 */
const LOW_WATER_BYTES = 64 * 1024

/** The room the app joins unless the address says another (`?room=name`). */
export const DEFAULT_ROOM = 'plaza'

export type JoinState = { readonly kind: 'joining' } | { readonly kind: 'joined' } | { readonly kind: 'failed'; readonly error: string }

/** One person's time in a room: the joined room and what the app keeps about it. */
export interface Session {
  readonly room: Room
  readonly people: People
  readonly chat: Chat
  readonly messages: DirectMessages
  readonly files: FileSharing
  /** Connections this page holds right now. */
  readonly connected: Signal<number>
  /** The person's key: who they are to others, and what their messages are encrypted to. */
  readonly identity: Identity
  /** False when the browser would not keep the key (IndexedDB blocked): the identity lasts this visit only. */
  readonly identityKept: boolean
  readonly contacts: Contacts
  /** Connections closed because their certificate was not the one signed: someone between is tampering. */
  readonly mismatches: Signal<number>
  /** Replaces the person's key with an imported one (ASCII armor); the page reloads to join as that person. */
  importKey(armored: string, passphrase?: string): Promise<void>
  setName(name: string): Promise<void>
  leave(): Promise<void>
}

/**
 * Joins `room` through the router that served the page, with everything the app needs. Only the library's
 * public API (`malla/browser`) is used: the app doubles as its reference example.
 */
export async function startSession(roomName: string, name: string, signal_?: AbortSignal): Promise<Session> {
  // OpenPGP loads here, with the join, not with the page: a chunk of its own (malla/identity).
  const { identity, kept, store, importIdentity } = await personKey(name)
  const room = await joinRoom(roomName, { tables: ['chat'], name, identity, rtcOptions: { lowWaterMark: LOW_WATER_BYTES }, ...(signal_ ? { signal: signal_ } : {}) })
  const connected = signal(room.mesh.peers().length)
  const count = () => (connected.value = room.mesh.peers().length)
  const mismatches = signal(0)
  const offs = [room.mesh.on('peer', count), room.mesh.on('peer-closed', count), room.mesh.on('certificate-mismatch', () => mismatches.value++)]
  const contacts = new Contacts()
  const people = new People(room, contacts)
  const chat = new Chat(room, name, people)
  const messages = new DirectMessages(room, name, people)
  const files = new FileSharing(room)
  // Routed messages carry what each feature sends to one peer; each feature takes the kinds it knows.
  offs.push(
    room.overlay.messages.on('message', (from, body) => {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return
      batch(() => {
        chat.receive(from, body)
        messages.receive(from, body)
      })
    }),
  )
  addEventListener('pagehide', () => void room.leave())
  return {
    room,
    people,
    chat,
    messages,
    files,
    connected,
    identity,
    identityKept: kept,
    contacts,
    mismatches,
    async importKey(armored, passphrase) {
      const imported = await importIdentity(armored, passphrase)
      await store.save(imported.exportSecret())
    },
    async setName(next) {
      chat.name = next
      messages.name = next
      await Promise.all([room.presence.setName(next), room.directory.publish(next)])
    },
    async leave() {
      for (const off of offs) off()
      people.stop()
      chat.stop()
      messages.stop()
      files.stop()
      await room.leave()
    },
  }
}

/**
 * The person's key, kept in IndexedDB, made on the first visit. A browser that will not keep it (storage
 * blocked) gets one for this visit, and the app says so.
 */
async function personKey(name: string): Promise<{ identity: Identity; kept: boolean; store: KeyStore; importIdentity: typeof import('malla/identity').importIdentity }> {
  const { loadOrCreateIdentity, importIdentity, MemoryKeyStore } = await import('malla/identity')
  const store = new IdbKeyStore()
  try {
    return { identity: (await loadOrCreateIdentity(store, name)).identity, kept: true, store, importIdentity }
  } catch (e) {
    if ((e as { code?: string }).code !== 'STORAGE') throw e
    const memory = new MemoryKeyStore()
    return { identity: (await loadOrCreateIdentity(memory, name)).identity, kept: false, store: memory, importIdentity }
  }
}
