import { badInput } from '../core/errors.js'
import { MAX_TYPE_NAME_LENGTH, parseTypeName } from '../core/schema.js'
import type { TypeName } from '../core/types.js'

/** An app's table name within a room: short, and safe in a type name as it is; a leading `_` is malla's own (`_presence`). */
export const ROOM_TABLE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_]{0,31}$/

/**
 * The shared-state type that holds a room's table (docs/protocol.md §15): `room-<room>-<table>`, where the room
 * name keeps its letters and digits and writes every other character as `_` and its two hex digits (room names
 * allow `_.:@+-`, type names only `[A-Za-z0-9_-]`). So `plaza` / `chat` is `room-plaza-chat` and `fiesta.2026`
 * / `chat` is `room-fiesta_2e2026-chat`: one room's tables never meet another's, and any router, a LibreMesh one
 * included, carries them as ordinary types. Room names are ASCII (signal-records' isRoomName), so two hex digits
 * always suffice. Throws BAD_INPUT for a bad table name, or when the type would be longer than a type name may be.
 */
export function roomTableType(room: string, table: string): TypeName {
  if (!ROOM_TABLE_PATTERN.test(table)) throw badInput(`bad table name ${JSON.stringify(table)}: 1-32 letters, digits and _, not starting with _`)
  return roomType(room, table)
}

/** The type of malla's own table `name` (`_presence`) in a room. */
export function roomOwnType(room: string, name: `_${string}`): TypeName {
  return roomType(room, name)
}

function roomType(room: string, table: string): TypeName {
  let encoded = ''
  for (const ch of room) encoded += /[A-Za-z0-9]/.test(ch) ? ch : `_${(ch.codePointAt(0) as number).toString(16).padStart(2, '0')}`
  const type = `room-${encoded}-${table}`
  if (type.length > MAX_TYPE_NAME_LENGTH) throw badInput(`room ${JSON.stringify(room)} and table ${JSON.stringify(table)} make a type name over ${MAX_TYPE_NAME_LENGTH} characters`)
  return parseTypeName(type)
}
