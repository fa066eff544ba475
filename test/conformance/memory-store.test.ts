import { MemoryStore } from '../../src/storage/memory-store.js'
import { tableStoreSuite } from './table-store-suite.js'

tableStoreSuite('MemoryStore', async () => {
  const store = new MemoryStore()
  // One process, one memory: the "other handle" is the store itself.
  return { store, other: () => store, teardown: async () => {} }
})
