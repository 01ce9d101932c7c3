// The server's checkpoint-signing key (docs/crypto.md §12): a raw 32-byte Ed25519 seed in the data directory, mode
// 0600, created atomically on first start and refused when it cannot be trusted.
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsc, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readSync, unlinkSync, writeSync, fchmodSync } from 'node:fs';
import path from 'node:path';
import { initCrypto, serverSigningKeyFromSeed, type ServerSigningKey } from '@kluis/shared';
import { fsyncDirSync } from '../fsync-dir.js';

export const SIGNING_KEY_FILE = 'audit-signing.key';

/** Thrown when the signing key file cannot be trusted; the server must not start. */
export class SigningKeyFileError extends Error {
  override name = 'SigningKeyFileError';
}

function readSeed(file: string, followLinks = false): Uint8Array {
  const fd = openSync(file, fsc.O_RDONLY | (followLinks ? 0 : fsc.O_NOFOLLOW));
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SigningKeyFileError(`${file}: not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new SigningKeyFileError(`${file}: readable or writable by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); run chmod 600 on it`);
    }
    if (st.size !== 32) throw new SigningKeyFileError(`${file}: ${st.size} bytes, a signing seed is exactly 32 bytes`);
    const seed = new Uint8Array(32);
    let got = 0;
    while (got < 32) {
      const n = readSync(fd, seed, got, 32 - got, got);
      if (n === 0) throw new SigningKeyFileError(`${file}: shorter than 32 bytes`);
      got += n;
    }
    return seed;
  } finally {
    closeSync(fd);
  }
}

function writeSeedAtomically(dir: string, file: string): void {
  const tmp = path.join(dir, `.${SIGNING_KEY_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const seed = randomBytes(32);
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    fchmodSync(fd, 0o600); // whatever the umask
    let put = 0;
    while (put < 32) put += writeSync(fd, seed, put, 32 - put);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    seed.fill(0);
  }
  try {
    // link() never replaces: if another process created the key meanwhile, keep theirs.
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
  fsyncDirSync(dir);
}

/**
 * The server's checkpoint-signing key from `<dataDir>/audit-signing.key` (a raw 32-byte Ed25519 seed, mode
 * 0600), created atomically on first start. Throws SigningKeyFileError if the file is a symlink, not a regular
 * file, readable or writable by group or others, or not exactly 32 bytes.
 */
export async function loadOrCreateServerSigningKey(dataDir: string): Promise<ServerSigningKey> {
  await initCrypto();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, SIGNING_KEY_FILE);
  let exists = true;
  try {
    const st = lstatSync(file);
    if (st.isSymbolicLink()) throw new SigningKeyFileError(`${file}: is a symbolic link; the key must be a regular file`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    exists = false;
  }
  if (!exists) writeSeedAtomically(dataDir, file);
  const seed = readSeed(file);
  try {
    return serverSigningKeyFromSeed(seed);
  } finally {
    seed.fill(0);
  }
}

/**
 * The key seed given as a configured secret (KLUIS_SERVER_KEY_FILE; required in production): never created here. The
 * path may be a symbolic link (secret stores mount them so); the file it names must pass the same checks as above.
 */
export async function loadServerSigningKeyFile(file: string): Promise<ServerSigningKey> {
  await initCrypto();
  let seed: Uint8Array;
  try {
    seed = readSeed(file, true);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new SigningKeyFileError(`${file}: does not exist (KLUIS_SERVER_KEY_FILE)`);
    throw err;
  }
  try {
    return serverSigningKeyFromSeed(seed);
  } finally {
    seed.fill(0);
  }
}
