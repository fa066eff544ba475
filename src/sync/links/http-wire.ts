import type { TableRef } from '../../storage/table-store.js'
import { FLAVOURS } from '../../core/flavours.js'
import { normalizeAddress } from '../../transport/address.js'

/**
 * The sync protocol's HTTP wire (docs/protocol.md §4, §9): LibreMesh's endpoint for whole tables and pushes,
 * `/malla/v1/reconcile` for reconciliation, and the headers by which malla nodes know each other.
 */

/**
 * malla's capability header: every malla answer carries `x-malla: 1`, so a node learns from its first
 * exchange whether a neighbour speaks malla. LibreMesh routers ignore unknown headers.
 */
export const MALLA_HEADER = 'x-malla'
export const MALLA_PROTOCOL_VERSION = '1'
/**
 * The sender's `--name` (URI-encoded), on malla's answers and on its requests: how a node learns its
 * neighbours' names, and which neighbour a request came from (so a change is not sent back to it).
 */
export const MALLA_NAME_HEADER = 'x-malla-name'
/**
 * Sent with a partial table to ask a malla neighbour for a delta answer (`push`: only its corrections for the
 * keys sent, not its whole table). A partial table is still a valid LibreMesh sync, merged key by key.
 */
export const MALLA_SYNC_HEADER = 'x-malla-sync'
export const RECONCILE_PATH = '/malla/v1/reconcile'

/** A neighbour's endpoint for one table, from its base URL (`http://[fe80::1%25br-lan]`, `http://10.0.0.1:8080/`). */
export function endpointUrl(base: string, ref: TableRef): string {
  return `${trimBase(base)}${FLAVOURS[ref.flavour].endpoint}${ref.type}`
}

export function trimBase(base: string): string {
  return base.replace(/\/+$/, '')
}

/**
 * Which link a request over HTTP came from, as ChangeEvent.sources records it: the sender's address and the
 * name it gave. The address alone would not do: neighbours on one machine (a lab, tests) share it.
 */
export function httpSourceId(address: string, name: string | undefined): string {
  return `http ${normalizeAddress(address)} ${name ?? ''}`
}
