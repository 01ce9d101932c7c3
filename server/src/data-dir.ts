// The data directory holds the metadata database (password-sealed key bundles, session hashes, the audit trail),
// the server's signing key and, with the embedded store, every chunk: nobody but the server's user may read it.
// The server runs with umask 077 (main.ts) and creates everything with explicit modes: directories 0700, files 0600.
// A directory the operator made with wider rights is left alone (it may be on purpose, e.g. a backup group) but
// warned about; database files we find readable by others are ours, so they are tightened.
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

/** The sqlite database file in the data directory, and the files sqlite keeps beside it. */
export const DB_FILE = 'kluis.sqlite3';
const DB_FILES = [DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`, `${DB_FILE}-journal`];

/** Creates the data directory (0700) if needed; warns about one open to others; tightens database files. */
export function prepareDataDir(dir: string, log: Pick<Logger, 'warn'>): void {
  const created = mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  if (created === undefined) {
    const mode = statSync(dir).mode & 0o777;
    if (mode & 0o077) {
      log.warn({ dataDir: dir, mode: mode.toString(8) }, 'the data directory is open to other users: run chmod 700 on it');
    }
  }
  for (const name of DB_FILES) {
    const file = path.join(dir, name);
    let mode: number;
    try {
      mode = statSync(file).mode & 0o777;
    } catch {
      continue; // not there (yet)
    }
    if (mode & 0o077) {
      try {
        chmodSync(file, FILE_MODE);
        log.warn({ file, was: mode.toString(8) }, 'database file was readable by other users: set to 600');
      } catch (err) {
        // Not ours to change (kluis-admin run as another user): say so, and let the database decide about access.
        log.warn({ file, mode: mode.toString(8), err }, 'database file is readable by other users and could not be set to 600');
      }
    }
  }
}

/**
 * Creates the database file with mode 0600 before sqlite opens it (sqlite would create it 0644 less the umask); sqlite
 * gives its -wal and -shm files the database file's mode.
 */
export function createDbFile(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  const file = path.join(dir, DB_FILE);
  closeSync(openSync(file, 'a', FILE_MODE));
  return file;
}
