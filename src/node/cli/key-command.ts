import type { Command } from 'commander'
import { readFile } from 'node:fs/promises'
import { userInfo } from 'node:os'
import { resolve } from 'node:path'
import { badInput, MallaError } from '../../core/errors.js'
import { createIdentity, importIdentity, openpgp, readPublicIdentity, type Identity } from '../../identity/identity.js'
import { defaultKeyPath, FileKeyStore } from '../identity/file-key-store.js'

/**
 * `malla key`: the person's OpenPGP key for a Node peer or a daemon, in one file (mode 0600), interchangeable
 * with GnuPG's: `malla key export | gpg --import`, `gpg --export-secret-keys --armor ID | malla key import -`,
 * and signatures either side verifies.
 */
export function keyCommand(program: Command, print: (line: string) => void): void {
  const key = program
    .command('key')
    .summary('make, show, import and export this machine\'s OpenPGP identity; sign and verify as GnuPG does')
    .description(
      'A person\'s identity is an OpenPGP key (Ed25519 to sign, Curve25519 to decrypt); its fingerprint names them. ' +
        'The secret key is kept, ASCII-armored, in one file readable by its owner only. It moves both ways with GnuPG: ' +
        '`malla key export | gpg --import`, and `gpg --export-secret-keys --armor FPR | malla key import -`.',
    )
    .option('--key <file>', 'the key file (default: $MALLA_KEY, else $XDG_CONFIG_HOME/malla/key.asc)')
  const storeOf = (): FileKeyStore => new FileKeyStore(resolve((key.opts() as { key?: string }).key ?? defaultKeyPath()))
  const kept = (): Promise<Identity> => keptIdentity((key.opts() as { key?: string }).key)
  const refuseOverwrite = async (store: FileKeyStore, force: boolean | undefined) => {
    if (!force && (await store.load().catch(() => 'unreadable')) !== undefined) throw badInput(`${store.path} already holds a key: --force replaces it (export it first: it is someone's identity)`)
  }
  const describe = (id: Identity, path: string) => JSON.stringify({ fingerprint: id.fingerprint, name: id.name, file: path })

  key
    .command('new')
    .summary('make a new key pair and keep it in the key file')
    .option('--name <name>', 'the name in the key\'s user id (default: your login name)')
    .option('--force', 'replace a key the file already holds')
    .action(async (o: { name?: string; force?: boolean }) => {
      const store = storeOf()
      await refuseOverwrite(store, o.force)
      const id = await createIdentity(o.name ?? userInfo().username)
      await store.save(id.exportSecret())
      print(describe(id, store.path))
    })

  key
    .command('show')
    .summary('print the kept key\'s fingerprint and name as JSON')
    .action(async () => print(describe(await kept(), storeOf().path)))

  key
    .command('export')
    .summary('print the public key (or with --secret the secret key), ASCII-armored')
    .option('--secret', 'the secret key: whoever holds it can act as you')
    .action(async (o: { secret?: boolean }) => {
      const id = await kept()
      process.stdout.write(o.secret ? id.exportSecret() : id.publicKey)
    })

  key
    .command('import')
    .summary('keep an ASCII-armored secret key (malla\'s or GnuPG\'s) in the key file')
    .argument('<file>', 'the armored secret key, or - for stdin')
    .option('--passphrase-file <file>', 'the passphrase of a protected key (its first line); the key is kept unprotected, mode 0600')
    .option('--force', 'replace a key the file already holds')
    .action(async (file: string, o: { passphraseFile?: string; force?: boolean }) => {
      const store = storeOf()
      await refuseOverwrite(store, o.force)
      const passphrase = o.passphraseFile === undefined ? undefined : (await readInput(o.passphraseFile)).toString('utf8').split(/\r?\n/)[0]
      const id = await importIdentity((await readInput(file)).toString('utf8'), passphrase)
      await store.save(id.exportSecret())
      print(describe(id, store.path))
    })

  key
    .command('sign')
    .summary('print an armored detached signature of a file (gpg --verify SIG FILE checks it)')
    .argument('[file]', 'what to sign (default: stdin)', '-')
    .action(async (file: string) => {
      const id = await kept()
      const pgp = await openpgp()
      process.stdout.write(pgp.armor(pgp.enums.armor.signature, id.sign(await readInput(file))))
    })

  key
    .command('verify')
    .summary('check a detached signature (armored or binary) against a public key; exit 1 when it does not hold')
    .argument('<signature>', 'the signature file')
    .argument('[file]', 'what was signed (default: stdin)', '-')
    .requiredOption('--public <file>', 'the signer\'s armored public key')
    .action(async (signature: string, file: string, o: { public: string }) => {
      const signer = await readPublicIdentity((await readInput(o.public)).toString('utf8'))
      const sig = await readSignature(await readInput(signature))
      const check = signer.verify(await readInput(file), sig)
      print(JSON.stringify({ ...check, fingerprint: signer.fingerprint, name: signer.name }))
      if (!check.valid) process.exitCode = 1
    })
}

/** The identity kept in `file` (default: `defaultKeyPath()`); NOT_FOUND, with what to do, when there is none. */
export async function keptIdentity(file?: string): Promise<Identity> {
  const store = new FileKeyStore(resolve(file ?? defaultKeyPath()))
  const armored = await store.load()
  if (armored === undefined) throw new MallaError('NOT_FOUND', `no key in ${store.path}: make one with \`malla key new --name NAME\` or import one`)
  return importIdentity(armored)
}

/** A file's bytes, or stdin's for `-`. */
async function readInput(file: string): Promise<Buffer> {
  if (file !== '-') return readFile(file).catch((e: NodeJS.ErrnoException) => Promise.reject(badInput(`cannot read ${file}: ${e.code ?? e.message}`)))
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** A signature's packet bytes, from armor or as they are. */
async function readSignature(bytes: Buffer): Promise<Uint8Array> {
  const text = bytes.subarray(0, 64).toString('latin1')
  if (!text.includes('-----BEGIN PGP SIGNATURE-----')) return bytes
  const pgp = await openpgp()
  const sig = await pgp.readSignature({ armoredSignature: bytes.toString('utf8') }).catch((e: Error) => Promise.reject(badInput(`not an armored signature: ${e.message}`)))
  // An armored signature read from a file is whole bytes, never a stream.
  return sig.write() as Uint8Array
}
