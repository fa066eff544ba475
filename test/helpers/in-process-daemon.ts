import { silentLogger } from '../../src/core/log.js'
import { DEFAULTS, PeerDaemon, type PeerDaemonOptions } from '../../src/node/daemon/peer-daemon.js'
import { tempDir } from './processes.js'

/**
 * A `PeerDaemon` in this process, on 127.0.0.1 with an ephemeral port, fresh data and hooks directories,
 * no peers and no log unless `overrides` say otherwise. Not started; stopped when the test ends.
 */
export async function inProcessDaemon(t: Parameters<typeof tempDir>[0], overrides: Partial<PeerDaemonOptions> = {}): Promise<PeerDaemon> {
  const dir = await tempDir(t)
  const daemon = new PeerDaemon({ ...DEFAULTS, port: 0, host: '127.0.0.1', dataDir: dir, hooksDir: `${dir}/hooks`, name: 'T', peers: [], log: silentLogger, ...overrides })
  t.after(() => daemon.stop())
  return daemon
}
