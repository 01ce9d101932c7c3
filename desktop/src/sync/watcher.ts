// File-system watching for the engine (docs/architecture.md §4): chokidar events only schedule a rescan; the scan is the truth
// (it re-checks size + mtime + inode and waits for files still being written). The engine's own temp files are
// ignored so a download does not wake the watcher twice.
import path from 'node:path';
import { TEMP_PREFIX } from './local-paths.js';

/**
 * Watches `root` recursively; calls `onChange(absPath)` for every change (without a path on a watcher error: then
 * everything is rescanned). Returns the function that stops it.
 */
export async function watchFolder(root: string, onChange: (absPath?: string) => void): Promise<() => Promise<void>> {
  // Loaded here, not at start: a `kluis sync --once` run never watches.
  const { watch } = await import('chokidar');
  const watcher = watch(root, {
    ignoreInitial: true,
    followSymlinks: false,
    ignored: (p: string) => path.basename(p).startsWith(TEMP_PREFIX),
  });
  watcher.on('all', (_event: string, p: string) => onChange(p));
  watcher.on('error', () => onChange());
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return async () => {
    await watcher.close();
  };
}
