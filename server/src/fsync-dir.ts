// Making a rename or link durable: the directory entry is only on disk once the directory itself is fsynced; and
// replacing a small file (a state file) atomically and durably.

import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsc, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';

/** fsyncs a directory; where directories cannot be fsynced (some file systems), the file itself is still durable. */
export function fsyncDirSync(dir: string): void {
  try {
    const dfd = openSync(dir, fsc.O_RDONLY);
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // not supported here: nothing more can be done
  }
}

/** Replaces `file` with `text` atomically and durably (temporary file, fsync, rename, fsync of the directory), mode 0600. */
export function writeFileAtomicallySync(file: string, text: string): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    const bytes = Buffer.from(text, 'utf8');
    let put = 0;
    while (put < bytes.length) put += writeSync(fd, bytes, put, bytes.length - put);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file); // replaces a symlink itself, never its target
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
  fsyncDirSync(dir);
}
