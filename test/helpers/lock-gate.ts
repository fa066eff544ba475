import type { TableStore } from '../../src/storage/table-store.js'

/**
 * Makes `store.lock` wait while the gate is held: to see what a replica announces, and what a reader gets,
 * before a write has its lock.
 */
export function lockGate(store: TableStore): { hold(): void; open(): void } {
  let gate: Promise<void> | undefined
  let release: () => void = () => {}
  const lock = store.lock.bind(store)
  store.lock = async (ref) => {
    await gate
    return lock(ref)
  }
  return {
    hold: () => {
      gate = new Promise((resolve) => (release = resolve))
    },
    open: () => release(),
  }
}
