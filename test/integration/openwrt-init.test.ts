import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { CLI, runBounded, runCli, startDaemon, tempDir } from '../helpers/processes.js'

const INIT = fileURLToPath(new URL('../../packaging/openwrt/malla.init', import.meta.url))

/**
 * Runs the init script's start_service under plain sh with procd's shell functions replaced by stubs that print
 * what procd would be told (there is no procd here: its real behaviour, respawn included, is not tested).
 */
async function startService(dir: string, config: string): Promise<{ code: number | null; calls: string[]; stderr: string }> {
  const script = [
    'procd_open_instance() { echo "open"; }',
    'procd_set_param() { printf "param"; for a in "$@"; do printf " [%s]" "$a"; done; echo; }',
    'procd_close_instance() { echo "close"; }',
    'logger() { echo "logger $*" >&2; }',
    `. "${INIT}"`,
    'start_service',
  ].join('\n')
  const harness = join(dir, 'harness.sh')
  await writeFile(harness, script)
  const r = await runBounded('env', [`MALLA_NODE=${process.execPath}`, `MALLA_PROG=${CLI}`, `MALLA_CONFIG=${config}`, 'sh', harness], '', 30_000, 'init script')
  return { code: r.code, calls: r.stdout.split('\n').filter(Boolean), stderr: r.stderr }
}

test('the init script gives procd `node malla.mjs peer --config FILE` with respawn, and nothing when disabled or broken', async (t) => {
  const dir = await tempDir(t)
  const good = join(dir, 'good')
  await writeFile(good, "config malla 'main'\n\toption port '8080'\n")
  const started = await startService(dir, good)
  assert.equal(started.code, 0, started.stderr)
  assert.equal(started.calls[0], 'open')
  assert.equal(started.calls[1], `param [command] [${process.execPath}] [${CLI}] [peer] [--config] [${good}]`)
  assert.ok(started.calls.includes('param [respawn] [3600] [5] [5]'), started.calls.join('\n'))
  assert.equal(started.calls.at(-1), 'close')

  const disabled = join(dir, 'disabled')
  await writeFile(disabled, "config malla 'main'\n\toption enabled '0'\n")
  const off = await startService(dir, disabled)
  assert.equal(off.code, 0)
  assert.deepEqual(off.calls, [], 'a disabled daemon gets no instance')

  const broken = join(dir, 'broken')
  await writeFile(broken, "config malla 'main'\n\toption prot '8080'\n")
  const refused = await startService(dir, broken)
  assert.notEqual(refused.code, 0)
  assert.deepEqual(refused.calls, [])
  assert.match(refused.stderr, /unknown option "prot"/)
})

test('malla peer --config takes its flags from the UCI file; flags after it win', async (t) => {
  const dir = await tempDir(t)
  const config = join(dir, 'malla')
  await writeFile(config, `config malla 'main'\n\toption name 'from-config'\n\toption data '${join(dir, 'data')}'\n\toption port '1'\n`)
  // --port 0 given after --config overrides the file's port 1 (which would need privileges).
  const daemon = await startDaemon(t, ['--config', config, '--port', '0'])
  const put = await runCli(['insert', 'conf', '--url', daemon.base], '{"k":1}')
  assert.equal(put.code, 0, put.stderr)
  const table = JSON.parse((await runCli(['get', 'conf', '--url', daemon.base])).stdout)
  assert.equal(table.k.author, 'from-config')
  await daemon.stop()

  const bad = await runCli(['peer', '--config', join(dir, 'missing')], '', 10_000)
  assert.equal(bad.code, 22)
  assert.match(bad.stderr, /cannot read .*missing: ENOENT/)
})
