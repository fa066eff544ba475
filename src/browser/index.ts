/**
 * What a page imports: the isomorphic core, a replica over memory, and LibreMesh's full-table sync
 * through `fetch`. The router that served the page is reached at its own origin.
 */
export * from '../core/index.js'
export { Replica, type ChangeEvent, type Snapshot } from '../replica/replica.js'
export { MemoryStore } from '../storage/memory-store.js'
export { endpointUrl, exchangeTable, syncTable, type SyncOutcome } from '../sync/full-table-sync.js'
export { fetchPoster } from '../transport/http-poster.js'
export { DaemonApiClient } from '../transport/daemon-api-client.js'
