/**
 * A shared-state-async node (AsyncNodeDouble) as a process, for tests that need one inside a network namespace:
 * `async-node-process.ts HOST PORT NAME`. It registers bat-hosts (update interval 1 s), inserts `{NAME: "NAME_wlan0"}`,
 * prints `listening PORT`, then `changed TYPE KEY...` for every merge that changes data. Stops on SIGTERM.
 */
import { AsyncNodeDouble } from './async-node-double.js'

const [host, port, name] = process.argv.slice(2)
if (!host || !port || !name) throw new Error('usage: async-node-process.ts HOST PORT NAME')
const node = new AsyncNodeDouble(name, new Map([['bat-hosts', { updateInterval: 1, ttl: 2400 }]]))
node.onChange = (type, keys) => process.stdout.write(`changed ${type} ${keys.join(' ')}\n`)
node.insert('bat-hosts', { [name]: `${name}_wlan0` })
process.stdout.write(`listening ${await node.start(host, Number(port))}\n`)
process.on('SIGTERM', () => void node.stop().then(() => process.exit(0)))
