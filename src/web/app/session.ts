import { batch, signal, type Signal } from '@preact/signals'
import { joinRoom, type Room } from 'malla/browser'
import { Chat } from './chat.js'
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
  setName(name: string): Promise<void>
  leave(): Promise<void>
}

/**
 * Joins `room` through the router that served the page, with everything the app needs. Only the library's
 * public API (`malla/browser`) is used: the app doubles as its reference example.
 */
export async function startSession(roomName: string, name: string, signal_?: AbortSignal): Promise<Session> {
  const room = await joinRoom(roomName, { tables: ['chat'], name, rtcOptions: { lowWaterMark: LOW_WATER_BYTES }, ...(signal_ ? { signal: signal_ } : {}) })
  const connected = signal(room.mesh.peers().length)
  const count = () => (connected.value = room.mesh.peers().length)
  const offs = [room.mesh.on('peer', count), room.mesh.on('peer-closed', count)]
  const people = new People(room)
  const chat = new Chat(room, name, people)
  const messages = new DirectMessages(room, name)
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
    async setName(next) {
      chat.name = next
      messages.name = next
      await room.presence.setName(next)
    },
    async leave() {
      for (const off of offs) off()
      people.stop()
      chat.stop()
      files.stop()
      await room.leave()
    },
  }
}
