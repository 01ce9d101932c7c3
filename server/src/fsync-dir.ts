// Making a rename or link durable: the directory entry is only on disk once the directory itself is fsynced.

import { closeSync, constants as fsc, fsyncSync, openSync } from 'node:fs';

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
