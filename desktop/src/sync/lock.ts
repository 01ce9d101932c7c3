// One engine per folder, across processes: a lock file in KLUIS_HOME naming the process that syncs the folder.
import { open, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, KluisError } from '@kluis/shared';

/** One engine per folder: a lock file in KLUIS_HOME naming the process; a dead process's lock is taken over. */
export async function lockFolder(home: string, folderId: number): Promise<() => Promise<void>> {
  const file = path.join(home, `folder-${folderId}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const h = await open(file, 'wx', 0o600);
      await h.writeFile(String(process.pid));
      await h.close();
      return async () => {
        await unlink(file).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new KluisError(ErrorCode.Conflict, `this folder is already being synced by process ${pid} (stop it first)`);
      }
      await unlink(file).catch(() => undefined);
    }
  }
  await writeFile(file, String(process.pid), { mode: 0o600 });
  return async () => {
    await unlink(file).catch(() => undefined);
  };
}

/** Whether a folder's lock is held by a live process (for `kluis status` and `restore`). */
export async function folderLockHolder(home: string, folderId: number): Promise<number | null> {
  const pid = Number((await readFile(path.join(home, `folder-${folderId}.lock`), 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : null;
}

/** Whether a process with this pid exists (EPERM: it does, as another user's). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

