// The whole history of a space for `kluis export` (./door-export.ts): every version of the change log, each opened and
// judged as a sync judges it (./remote.ts), read in one pass of the log's pages, so that an export of N files costs
// pages of the log rather than N history requests (and N audit entries).
import type { Manifest } from '@kluis/shared';
import type { ApiClient } from '../api/client.js';
import { changePages, refusalReason, type SpaceCrypto, type VersionView } from './remote.js';

export interface OpenedVersion {
  version: VersionView;
  manifest: Manifest | null;
  signer: string | null;
  refused?: string;
}

/** Every version of every file of the space, newest first per file, and the change-log position read up to. */
export async function spaceHistory(c: ApiClient, sc: SpaceCrypto): Promise<{ seq: number; files: Map<string, OpenedVersion[]> }> {
  const views = new Map<string, VersionView[]>();
  const wraps = new Map<string, unknown[]>();
  const uploads: Record<string, unknown> = {};
  let seq = 0;
  for await (const page of changePages(c, sc.spaceId, 0, 5000)) {
    sc.noteUploads(page.uploads);
    for (const v of page.changes) {
      if (!views.has(v.fileId)) views.set(v.fileId, []);
      views.get(v.fileId)!.push(v);
    }
    // Each page names every wrap of the files it holds: the last page that names a file has them all.
    for (const [fileId, list] of Object.entries(page.fileKeyWraps)) wraps.set(fileId, list);
    Object.assign(uploads, page.uploads ?? {});
    seq = page.head;
  }
  const judge = (v: VersionView): OpenedVersion => {
    sc.open(v.fileId, wraps.get(v.fileId) ?? []);
    return { version: v, ...sc.openVersion(v) };
  };
  // A version written under a log position newer than the one loaded (a member added meanwhile, a new epoch): look
  // at the space again, once, and judge again; only then is it refused (as pullChanges does).
  let refreshed = false;
  const files = new Map<string, OpenedVersion[]>();
  for (const [fileId, list] of views) {
    const out: OpenedVersion[] = [];
    for (const v of [...list].reverse()) {
      try {
        out.push(judge(v));
      } catch (err) {
        if (refreshed) {
          out.push({ version: v, manifest: null, signer: null, refused: refusalReason(err) });
          continue;
        }
        refreshed = true;
        await sc.refresh(c);
        sc.noteUploads(uploads);
        try {
          out.push(judge(v));
        } catch (again) {
          out.push({ version: v, manifest: null, signer: null, refused: refusalReason(again) });
        }
      }
    }
    files.set(fileId, out);
  }
  return { seq, files };
}
