import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DirectMessages } from '../../src/web/app/direct-messages.js'

/**
 * The app's direct messages as a stranger can feed them: a routed message's sender id is only a claim (issue 12),
 * so one peer can make up as many as it likes. What the page keeps stays bounded all the same.
 */
/** The room as the app's module sees it (through `malla/browser`). */
type Room = ConstructorParameters<typeof DirectMessages>[0]
type People = ConstructorParameters<typeof DirectMessages>[2]
/** Nobody present has a key: messages come in clear. */
const keyless: People = { nameOf: (id) => id, fingerprintOf: () => undefined, others: () => [] }

describe('DirectMessages (the web app)', () => {
  it('keeps at most 64 conversations and unread counts for those only, however many senders are made up', () => {
    // receive() never sends: a room that would throw if it did.
    const dms = new DirectMessages({} as Room, 'me', keyless)
    for (let i = 0; i < 1000; i++) dms.receive(`fake${i}`, { t: 'dm', id: `m${i}`, x: 'hi' })
    assert.equal(dms.conversations.value.size, 64)
    assert.equal(dms.unread.value.size, 64)
    assert.deepEqual([...dms.unread.value.keys()], [...dms.conversations.value.keys()], 'unread counts only for the conversations kept')
    assert.equal(dms.totalUnread(), 64)
    // The latest senders are the ones kept; an opened conversation has nothing unread.
    assert.ok(dms.conversations.value.has('fake999'))
    dms.setOpen('fake999')
    assert.equal(dms.totalUnread(), 63)
  })

  it('shows a message repeated on another path once, and keeps at most 200 per person, each cut to 4,000 characters', () => {
    const dms = new DirectMessages({} as Room, 'me', keyless)
    dms.receive('p', { t: 'dm', id: 'same', x: 'once' })
    dms.receive('p', { t: 'dm', id: 'same', x: 'once' })
    assert.equal(dms.conversations.value.get('p')?.length, 1)
    for (let i = 0; i < 300; i++) dms.receive('p', { t: 'dm', id: `n${i}`, x: 'y'.repeat(10_000) })
    const list = dms.conversations.value.get('p') ?? []
    assert.equal(list.length, 200)
    assert.ok(list.every((m) => m.text.length <= 4000))
    assert.equal(list.at(-1)?.id, 'n299')
  })

  it('takes no message in clear under the id of someone whose presence is signed by a key', () => {
    const signed: People = { nameOf: (id) => id, fingerprintOf: (id) => (id === 'kana' ? 'A'.repeat(40) : undefined), others: () => [] }
    const dms = new DirectMessages({} as Room, 'me', signed)
    dms.receive('kana', { t: 'dm', id: 'forged', x: 'soy Ana' })
    // Sealed, but the page has no identity to open it with: dropped too.
    dms.receive('kana', { t: 'dm', id: 'sealed', e: '-----BEGIN PGP MESSAGE-----' })
    dms.receive('plain', { t: 'dm', id: 'p', x: 'hola' })
    assert.deepEqual([...dms.conversations.value.keys()], ['plain'])
  })
})
