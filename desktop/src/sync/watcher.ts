// File-system watching for the engine (DESIGN §4): chokidar events only schedule a rescan; the scan is the truth
// (it re-checks size + mtime + inode and waits for files still being written). The engine's own temp files are
// ignored so a download does not wake the watcher twice.
import path from 'node:path';
import { watch } from 'chokidar';
import { TEMP_PREFIX } from './local-paths.js';

/** Watches `root` recursively; calls `onChange` for every change. Returns the function that stops it. */
export async function watchFolder(root: string, onChange: () => void): Promise<() => Promise<void>> {
  const watcher = watch(root, {
    ignoreInitial: true,
    followSymlinks: false,
    ignored: (p: string) => path.basename(p).startsWith(TEMP_PREFIX),
  });
  watcher.on('all', () => onChange());
  watcher.on('error', () => onChange());
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return async () => {
    await watcher.close();
  };
}
