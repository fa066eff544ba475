/**
 * An in-process lock per name: each `acquire` waits for the previous holder's release.
 * Storage adapters use it so that two writers in one process never interleave on one table.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>()

  async acquire(name: string): Promise<() => void> {
    const previous = this.tails.get(name) ?? Promise.resolve()
    let release!: () => void
    const current = new Promise<void>((resolve) => (release = resolve))
    const tail = previous.then(() => current)
    this.tails.set(name, tail)
    await previous
    return () => {
      release()
      if (this.tails.get(name) === tail) this.tails.delete(name)
    }
  }
}
