import assert from 'node:assert/strict'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { gnupg } from '../helpers/gnupg.js'
import { runCli, tempDir } from '../helpers/processes.js'

/**
 * `malla key` and GnuPG, both ways, through the real CLI and Debian's gpg: a key made by malla is imported by
 * GnuPG and its signatures verify there; a key made by GnuPG (plain or behind a passphrase) is imported by
 * malla, signs what GnuPG verifies, and GnuPG's own signatures verify in malla.
 */
test('a key made by malla: GnuPG imports it and says "Good signature", and only for the bytes signed', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const { gpg } = await gnupg(t)
  const key = ['key', '--key', join(dir, 'key.asc')]
  const made = await runCli([...key, 'new', '--name', 'Ana Núñez'])
  assert.equal(made.code, 0, made.stderr)
  const { fingerprint, name } = JSON.parse(made.stdout) as { fingerprint: string; name: string }
  assert.equal(name, 'Ana Núñez')
  assert.equal((await stat(join(dir, 'key.asc'))).mode & 0o777, 0o600)

  const pub = await runCli([...key, 'export'])
  assert.match(pub.stdout, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/)
  assert.equal((await gpg(['--import'], pub.stdout)).code, 0)
  const listed = await gpg(['--with-colons', '--list-keys'])
  assert.match(listed.stdout, new RegExp(`fpr:+${fingerprint}:`))

  const data = join(dir, 'offer.json')
  await writeFile(data, '{"peer":"abc","fingerprint":"00ff"}')
  const signed = await runCli([...key, 'sign', data])
  assert.equal(signed.code, 0, signed.stderr)
  await writeFile(`${data}.asc`, signed.stdout)
  const good = await gpg(['--status-fd', '1', '--verify', `${data}.asc`, data])
  assert.equal(good.code, 0, good.stderr)
  assert.match(good.stdout, new RegExp(`VALIDSIG ${fingerprint} `))

  await writeFile(data, '{"peer":"abc","fingerprint":"00fe"}')
  const bad = await gpg(['--status-fd', '1', '--verify', `${data}.asc`, data])
  assert.notEqual(bad.code, 0)
  assert.match(bad.stdout, /BADSIG/)

  // The secret key malla keeps is one GnuPG takes too.
  const secret = await runCli([...key, 'export', '--secret'])
  assert.equal((await gpg(['--import'], secret.stdout)).code, 0)
  assert.match((await gpg(['--with-colons', '--list-secret-keys'])).stdout, new RegExp(`fpr:+${fingerprint}:`))
})

test('a key made by GnuPG: malla imports it (also behind a passphrase), signs for GnuPG, verifies GnuPG', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t)
  const { gpg } = await gnupg(t)
  assert.equal((await gpg(['--quick-gen-key', 'Bea <bea@mesh.example>', 'future-default', 'default', 'never'])).code, 0)
  const fingerprint = /fpr:+([0-9A-F]{40}):/.exec((await gpg(['--with-colons', '--list-secret-keys'])).stdout)?.[1] as string
  const exported = (await gpg(['--armor', '--export-secret-keys', fingerprint])).stdout
  await writeFile(join(dir, 'bea.sec.asc'), exported)

  const key = ['key', '--key', join(dir, 'key.asc')]
  const imported = await runCli([...key, 'import', join(dir, 'bea.sec.asc')])
  assert.equal(imported.code, 0, imported.stderr)
  assert.deepEqual(JSON.parse(imported.stdout).fingerprint, fingerprint)
  assert.equal(JSON.parse(imported.stdout).name, 'Bea')
  // Importing over a kept key needs --force: it is someone's identity.
  const again = await runCli([...key, 'import', join(dir, 'bea.sec.asc')])
  assert.equal(again.code, 22)
  assert.match(again.stderr, /--force/)

  const data = join(dir, 'note.txt')
  await writeFile(data, 'hola desde la malla\n')
  const signed = await runCli([...key, 'sign', data])
  await writeFile(`${data}.asc`, signed.stdout)
  const good = await gpg(['--status-fd', '1', '--verify', `${data}.asc`, data])
  assert.match(good.stdout, new RegExp(`VALIDSIG ${fingerprint} `), good.stderr)

  // GnuPG's own signature, binary and armored, checked by malla against the exported public key.
  await writeFile(join(dir, 'bea.pub.asc'), (await gpg(['--armor', '--export', fingerprint])).stdout)
  assert.equal((await gpg(['--detach-sign', '-o', `${data}.sig`, data])).code, 0)
  assert.equal((await gpg(['--armor', '--detach-sign', '-o', `${data}.gpg.asc`, data])).code, 0)
  for (const sig of [`${data}.sig`, `${data}.gpg.asc`]) {
    const checked = await runCli(['key', 'verify', sig, data, '--public', join(dir, 'bea.pub.asc')])
    assert.equal(checked.code, 0, checked.stderr)
    assert.equal(JSON.parse(checked.stdout).valid, true)
  }
  await writeFile(data, 'hola desde otra malla\n')
  const refused = await runCli(['key', 'verify', `${data}.sig`, data, '--public', join(dir, 'bea.pub.asc')])
  assert.equal(refused.code, 1)
  assert.equal(JSON.parse(refused.stdout).valid, false)

  // A protected key: refused without its passphrase, taken with it (kept unprotected, mode 0600).
  const { gpg: gpg2 } = await gnupg(t)
  await gpg2(['--passphrase', 'correct horse', '--quick-gen-key', 'Cleo', 'future-default', 'default', 'never'])
  const locked = (await gpg2(['--passphrase', 'correct horse', '--armor', '--export-secret-keys'])).stdout
  await writeFile(join(dir, 'cleo.sec.asc'), locked)
  await writeFile(join(dir, 'pass'), 'correct horse\n')
  const other = ['key', '--key', join(dir, 'cleo.asc')]
  const noPass = await runCli([...other, 'import', join(dir, 'cleo.sec.asc')])
  assert.equal(noPass.code, 22)
  assert.match(noPass.stderr, /passphrase/)
  const withPass = await runCli([...other, 'import', '--passphrase-file', join(dir, 'pass'), '-'], locked)
  assert.equal(withPass.code, 0, withPass.stderr)
  assert.equal(JSON.parse(withPass.stdout).name, 'Cleo')
  assert.doesNotMatch(await readFile(join(dir, 'cleo.asc'), 'utf8'), /correct horse/)

  // An RSA key is not one malla can sign offers with: said plainly.
  const { gpg: gpg3 } = await gnupg(t)
  await gpg3(['--quick-gen-key', 'Rita', 'rsa2048', 'default', 'never'])
  const rsa = (await gpg3(['--armor', '--export-secret-keys'])).stdout
  const refusedRsa = await runCli(['key', '--key', join(dir, 'rita.asc'), 'import', '-'], rsa)
  assert.equal(refusedRsa.code, 22)
  assert.match(refusedRsa.stderr, /Ed25519/)
})

test('malla key says what is missing', async (t) => {
  const dir = await tempDir(t)
  const shown = await runCli(['key', '--key', join(dir, 'none.asc'), 'show'])
  assert.equal(shown.code, 66)
  assert.match(shown.stderr, /malla key new/)
  const junk = await runCli(['key', '--key', join(dir, 'k.asc'), 'import', '-'], 'not a key')
  assert.equal(junk.code, 22)
  const help = await runCli(['key', '--help'])
  assert.match(help.stdout, /gpg --import/)
})
