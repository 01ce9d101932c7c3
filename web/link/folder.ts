// The folder view of the link page (docs/crypto.md §9.1): the snapshot's files as a tree (name, size), a button per
// file and one for all of them as a streamed ZIP (zip.ts). What is saved is a Job: main.ts runs it with progress,
// resumes it after a network loss and closes or aborts the sink; the same Job type runs a file link's single file.
import { deriveFileSubkeys, fromBase64Url, type FolderListing, type FolderListingFile } from '@kluis/shared';
import { download, newDownload, type Opened, type Source } from './download.js';
import { formatBytes, plural, t } from './i18n.js';
import type { Sink } from './save.js';
import { el } from '../common/ui.js';
import { ZipWriter, zipSize } from './zip.js';

/** One save: a file, or a folder's ZIP. `run` continues where it stopped when called again after an error. */
export interface Job {
  name: string;
  total: number;
  written(): number;
  run(sink: Sink, onProgress: (done: number) => void): Promise<void>;
}

export function fileJob(linkId: string, src: Source, name: string): Job {
  const state = newDownload();
  return {
    name,
    total: src.manifest.size,
    written: () => state.written,
    run: (sink, onProgress) => download(linkId, src, sink, state, (p) => onProgress(p.done)),
  };
}

/** A listed file as a download source (its own file key, the link's token). */
function entrySource(opened: Opened, f: FolderListingFile): Source {
  return { access: opened.access, manifest: f, sub: deriveFileSubkeys(fromBase64Url(f.fileKey)) };
}

export const baseName = (path: string): string => path.split('/').pop() || 'download';

export function entryJob(linkId: string, opened: Opened, f: FolderListingFile): Job {
  return fileJob(linkId, entrySource(opened, f), baseName(f.path));
}

/** Every file into one ZIP named after the folder, its entries under "<folder>/". */
export function zipJob(linkId: string, opened: Opened, listing: FolderListing): Job {
  const entries = listing.files.map((f) => ({ name: `${listing.name}/${f.path}`, size: f.size }));
  const total = zipSize(entries);
  let zip: ZipWriter | null = null;
  let index = 0;
  let current: Job | null = null;
  return {
    name: `${listing.name}.zip`,
    total,
    // Every byte goes through the writer (headers and data), so its count is the progress.
    written: () => zip?.written ?? 0,
    async run(sink, onProgress) {
      zip ??= new ZipWriter(sink);
      const z = zip;
      for (; index < listing.files.length; index++) {
        if (!z.open) {
          await z.begin(entries[index]!);
          current = entryJob(linkId, opened, listing.files[index]!);
        }
        // The entry's data passes through the writer (CRC, count) to the same sink, which alone closes or aborts.
        const data: Sink = { kind: sink.kind, write: (bytes) => z.data(bytes), close: async () => undefined, abort: () => sink.abort() };
        await current!.run(data, () => onProgress(z.written));
        await z.end();
      }
      await z.finish();
      onProgress(z.written);
    },
  };
}

interface Node {
  dirs: Map<string, Node>;
  files: FolderListingFile[];
}

function tree(files: FolderListingFile[]): Node {
  const root: Node = { dirs: new Map(), files: [] };
  for (const f of files) {
    let node = root;
    const parts = f.path.split('/');
    for (const dir of parts.slice(0, -1)) {
      if (!node.dirs.has(dir)) node.dirs.set(dir, { dirs: new Map(), files: [] });
      node = node.dirs.get(dir)!;
    }
    node.files.push(f);
  }
  return root;
}

function list(node: Node, onOne: (f: FolderListingFile) => void): HTMLElement {
  const ul = el('ul', { class: 'tree' });
  for (const [name, child] of [...node.dirs].sort(([a], [b]) => a.localeCompare(b))) {
    const li = el('li', { class: 'dir' });
    li.append(el('span', { class: 'dirname' }, `${name}/`), list(child, onOne));
    ul.append(li);
  }
  for (const f of node.files) {
    const name = baseName(f.path);
    const li = el('li', { class: 'file' });
    const b = el('button', { type: 'button', class: 'secondary small', 'data-path': f.path, 'aria-label': t('folder.one', { name }) }, t('download.button')) as HTMLButtonElement;
    b.addEventListener('click', () => onOne(f));
    li.append(el('span', { class: 'name' }, name), el('span', { class: 'size' }, formatBytes(f.size)), b);
    ul.append(li);
  }
  return ul;
}

/** Count and total size, "download all", and the tree with a button per file. */
export function folderBody(listing: FolderListing, onOne: (f: FolderListingFile) => void, onAll: () => void): HTMLElement[] {
  const dl = el('dl', { class: 'facts' });
  const total = listing.files.reduce((n, f) => n + f.size, 0);
  dl.append(el('dt', {}, t('folder.total')), el('dd', {}, `${formatBytes(total)} · ${plural('folder.files', listing.files.length)}`));
  const all = el('button', { type: 'button', class: 'primary', id: 'download-all' }, t('folder.all')) as HTMLButtonElement;
  all.addEventListener('click', onAll);
  const heading = el('h2', { class: 'contents', id: 'contents' }, t('folder.contents'));
  const nav = el('nav', { 'aria-labelledby': 'contents' });
  nav.append(list(tree(listing.files), onOne));
  return [dl, all, el('p', { class: 'meta' }, t('folder.allNote')), heading, nav];
}
