// Conflict copies and three-way reconciliation (docs/architecture.md §4): table tests for every rule of desktop/src/sync/reconcile.ts,
// plus generated states checking the invariants (in sync -> nothing to do; never lose a byte).
import test from 'ava';
import { reconcile, uploadTarget, type ReconcileOptions } from '../../desktop/dist/sync/reconcile.js';
import { conflictName, conflictStamp, sanitizeDeviceName } from '../../desktop/dist/sync/tagged-names.js';
import type { BaseEntry, EntryKind, LocalEntry, RemoteEntry, SyncAction } from '../../desktop/dist/sync/types.js';

const EMPTY = '0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8';
const NOW = new Date(Date.UTC(2026, 4, 1, 9, 5));
const STAMP = '2026-05-01 0905';

// ---------------------------------------------------------------- conflictName

const nameRows: [string, string, string][] = [
  ['report.docx', 'laptop', `report (conflict laptop ${STAMP}).docx`],
  ['Map/Sub/verslag.txt', 'laptop', `Map/Sub/verslag (conflict laptop ${STAMP}).txt`],
  ['archive.tar.gz', 'pc', `archive.tar (conflict pc ${STAMP}).gz`],
  ['.bashrc', 'pc', `.bashrc (conflict pc ${STAMP})`],
  ['dir/.config.json', 'pc', `dir/.config (conflict pc ${STAMP}).json`],
  ['Makefile', 'pc', `Makefile (conflict pc ${STAMP})`],
  ['trailing.', 'pc', `trailing. (conflict pc ${STAMP})`],
  ['a.b/c', 'pc', `a.b/c (conflict pc ${STAMP})`],
  ['x.txt', 'Jan\'s PC (2)/werk', `x (conflict Jan-s PC -2-werk ${STAMP}).txt`],
  ['x.txt', '  ', `x (conflict device ${STAMP}).txt`],
  ['x.txt', 'a<b>c:d"e|f?g*h\\i', `x (conflict a-b-c-d-e-f-g-h-i ${STAMP}).txt`],
  ['één.txt', 'Zoë', `één (conflict Zoë ${STAMP}).txt`],
];

for (const [path, device, want] of nameRows) {
  test(`conflictName: ${JSON.stringify(path)} on ${JSON.stringify(device)}`, (t) => {
    t.is(conflictName(path, device, NOW), want);
  });
}

test('conflictName: a taken name gets " 2", " 3" inside the parentheses', (t) => {
  const taken = new Set([`a (conflict pc ${STAMP}).txt`, `a (conflict pc ${STAMP} 2).txt`]);
  t.is(conflictName('a.txt', 'pc', NOW, (p) => taken.has(p)), `a (conflict pc ${STAMP} 3).txt`);
});

test('conflictName: the time is UTC and the name stays within 255 bytes', (t) => {
  t.is(conflictStamp(new Date('2026-12-31T23:59:59+02:00')), '2026-12-31 2159');
  const long = 'é'.repeat(120) + '.txt'; // 244 bytes
  const out = conflictName(`d/${long}`, 'laptop', NOW);
  const name = out.slice(2);
  t.true(new TextEncoder().encode(name).length <= 255);
  t.true(name.endsWith(`(conflict laptop ${STAMP}).txt`));
  t.is(sanitizeDeviceName('x'.repeat(80)).length, 32);
});

// ---------------------------------------------------------------- reconcile table

let inoCounter = 1000;
function B(path: string, o: { f?: string; v?: string; h?: string; kind?: EntryKind; ino?: number; size?: number; mtime?: number } = {}): BaseEntry {
  const kind = o.kind ?? 'file';
  return {
    path, kind, fileId: o.f ?? `F-${path}`, versionId: o.v ?? 'v1', hash: o.h ?? (kind === 'dir' ? EMPTY : 'h1'),
    size: o.size ?? 10, mtimeMs: 1000, localSize: o.size ?? 10, localMtimeMs: o.mtime ?? 5000, localIno: o.ino ?? inoCounter++,
  };
}
function L(path: string, o: { h?: string; kind?: EntryKind; ino?: number; size?: number; mtime?: number } = {}): LocalEntry {
  const kind = o.kind ?? 'file';
  return { path, kind, size: o.size ?? 10, mtimeMs: o.mtime ?? 5000, ino: o.ino ?? inoCounter++, hash: o.h ?? (kind === 'dir' ? EMPTY : 'h1') };
}
/** The local twin of a base entry (same facts), optionally with other content. */
function LB(b: BaseEntry, h?: string): LocalEntry {
  return { path: b.path, kind: b.kind, size: b.localSize, mtimeMs: b.localMtimeMs, ino: b.localIno, hash: h ?? b.hash };
}
function R(fileId: string, path: string, o: { v?: string; h?: string; kind?: EntryKind; deleted?: boolean; seq?: number } = {}): RemoteEntry {
  const kind = o.kind ?? 'file';
  return { fileId, versionId: o.v ?? 'v1', seq: o.seq ?? 1, path, kind, size: 10, mtimeMs: 1000, hash: o.h ?? (kind === 'dir' ? EMPTY : 'h1'), deleted: o.deleted ?? false, chunks: [], keyEpoch: 1 };
}
/** The remote twin of a base entry (unchanged), optionally changed. */
function RB(b: BaseEntry, o: { v?: string; h?: string; path?: string; deleted?: boolean; kind?: EntryKind; seq?: number } = {}): RemoteEntry {
  return R(b.fileId, o.path ?? b.path, { v: o.v ?? b.versionId, h: o.h ?? b.hash, kind: o.kind ?? b.kind, deleted: o.deleted, seq: o.seq });
}

function show(a: SyncAction): string {
  switch (a.type) {
    case 'none':
      return `none ${a.path}`;
    case 'upload': {
      const { fileId, parent } = uploadTarget(a);
      return `upload ${a.path} ${fileId ?? 'new'}@${parent ?? 'null'}`;
    }
    case 'download':
      return `download ${a.path} ${a.remote.fileId}@${a.remote.versionId}${a.base ? ` over ${a.base.fileId}@${a.base.versionId}` : ''}`;
    case 'delete-remote':
      return `delete-remote ${a.path}`;
    case 'delete-local':
      return `delete-local ${a.path}`;
    case 'conflict':
      return `conflict ${a.path} -> ${a.conflictPath} remote=${a.remote.fileId}@${a.remote.versionId}`;
    case 'record':
      return `record ${a.path}${a.remote ? ` ${a.remote.fileId}@${a.remote.versionId}` : ''}${a.local ? ' +local' : ''}`;
    case 'move-local':
      return `move-local ${a.from} -> ${a.to}`;
    case 'move-remote':
      return `move-remote ${a.from} -> ${a.to}`;
    case 'refuse':
      return `refuse ${a.path}`;
  }
}

interface Row {
  name: string;
  base?: BaseEntry[];
  local?: LocalEntry[];
  remote?: RemoteEntry[];
  options?: Partial<ReconcileOptions>;
  want: string[];
}

const byPath = <T extends { path: string }>(xs: T[] = []): Map<string, T> => new Map(xs.map((x) => [x.path, x]));
const byFile = (xs: RemoteEntry[] = []): Map<string, RemoteEntry> => new Map(xs.map((x) => [x.fileId, x]));
const opts = (o: Partial<ReconcileOptions> = {}): ReconcileOptions => ({ device: 'pc', now: NOW, platform: 'linux', caseInsensitive: false, ...o });

const rows: Row[] = [];
const row = (r: Row): void => {
  rows.push(r);
};

// Rules 1-4: no base.
row({ name: '1 new local file -> upload as a new file', local: [L('a.txt')], want: ['upload a.txt new@null'] });
row({ name: '2 new remote file -> download', remote: [R('F', 'a.txt')], want: ['download a.txt F@v1'] });
row({ name: '3 both new, same content -> record', local: [L('a.txt', { h: 'hX' })], remote: [R('F', 'a.txt', { h: 'hX' })], want: ['record a.txt F@v1 +local'] });
row({ name: '4 both new, different content -> conflict', local: [L('a.txt', { h: 'hX' })], remote: [R('F', 'a.txt', { h: 'hY' })], want: [`conflict a.txt -> a (conflict pc ${STAMP}).txt remote=F@v1`] });
// Rules 5-7: remote unchanged.
{
  const b = B('a.txt');
  row({ name: '5 nothing changed -> none', base: [b], local: [LB(b)], remote: [RB(b)], want: ['none a.txt'] });
  row({ name: '6 local edit -> upload on top of the base', base: [b], local: [LB(b, 'h2')], remote: [RB(b)], want: ['upload a.txt F-a.txt@v1'] });
  row({ name: '7 local delete -> delete-remote', base: [b], remote: [RB(b)], want: ['delete-remote a.txt'] });
  // Rules 8-11: remote changed at the same path.
  row({ name: '8 remote edit over an unchanged file -> download', base: [b], local: [LB(b)], remote: [RB(b, { v: 'v2', h: 'h2' })], want: ['download a.txt F-a.txt@v2 over F-a.txt@v1'] });
  row({ name: '9 both edited to the same content -> record', base: [b], local: [LB(b, 'h2')], remote: [RB(b, { v: 'v2', h: 'h2' })], want: ['record a.txt F-a.txt@v2 +local'] });
  row({ name: '10 both edited differently -> conflict copy of the local edit', base: [b], local: [LB(b, 'h3')], remote: [RB(b, { v: 'v2', h: 'h2' })], want: [`conflict a.txt -> a (conflict pc ${STAMP}).txt remote=F-a.txt@v2`] });
  row({ name: '11 local delete vs remote edit keeps the edit -> download', base: [b], remote: [RB(b, { v: 'v2', h: 'h2' })], want: ['download a.txt F-a.txt@v2 over F-a.txt@v1'] });
  // Rules 12-14: remote deleted.
  row({ name: '12 remote delete of an unchanged file -> delete-local', base: [b], local: [LB(b)], remote: [RB(b, { v: 'v2', deleted: true })], want: ['delete-local a.txt'] });
  row({ name: '13 remote delete vs local edit keeps the edit -> upload on top of the deletion', base: [b], local: [LB(b, 'h2')], remote: [RB(b, { v: 'v2', deleted: true })], want: ['upload a.txt F-a.txt@v2'] });
  row({ name: '14 deleted on both sides -> record', base: [b], remote: [RB(b, { v: 'v2', deleted: true })], want: ['record a.txt F-a.txt@v2'] });
}
// Rules 15-18: remote moves.
{
  const b = B('a.txt', { f: 'F' });
  row({ name: '15 remote move of an unchanged file -> move-local, no transfer', base: [b], local: [LB(b)], remote: [RB(b, { v: 'v2', path: 'sub/b.txt' })], want: ['move-local a.txt -> sub/b.txt'] });
  row({ name: '16 remote move with new content -> download the new path, delete the old', base: [b], local: [LB(b)], remote: [RB(b, { v: 'v2', path: 'b.txt', h: 'h2' })], want: ['download b.txt F@v2', 'delete-local a.txt'] });
  row({ name: '16b remote move onto a path with a new local file -> conflict there, old path deleted', base: [b], local: [LB(b), L('b.txt', { h: 'hN' })], remote: [RB(b, { v: 'v2', path: 'b.txt' })], want: [`conflict b.txt -> b (conflict pc ${STAMP}).txt remote=F@v2`, 'delete-local a.txt'] });
  row({ name: '17 remote move vs local edit -> the edit stays as a new file, the moved file is downloaded', base: [b], local: [LB(b, 'h2')], remote: [RB(b, { v: 'v2', path: 'b.txt' })], want: ['upload a.txt new@null', 'download b.txt F@v2'] });
  row({ name: '18 remote move vs local delete -> drop the old row, download the new path', base: [b], remote: [RB(b, { v: 'v2', path: 'b.txt' })], want: ['record a.txt', 'download b.txt F@v2'] });
}
// Rule 19: local moves.
{
  const b = B('a.txt', { f: 'F', ino: 77 });
  const moved = { ...LB(b), path: 'x/b.txt' };
  row({ name: '19 local move (same inode, size, mtime, hash) -> move-remote, no upload', base: [b], local: [moved], remote: [RB(b)], want: ['move-remote a.txt -> x/b.txt'] });
  row({ name: '19b local move with an edit -> upload new + delete-remote', base: [b], local: [{ ...moved, hash: 'h2' }], remote: [RB(b)], want: ['upload x/b.txt new@null', 'delete-remote a.txt'] });
  row({ name: '19c local move while the remote changed -> keep the remote edit at the old path', base: [b], local: [moved], remote: [RB(b, { v: 'v2', h: 'h2' })], want: ['download a.txt F@v2 over F@v1', 'upload x/b.txt new@null'] });
  row({ name: '19d two candidates for one inode -> no guess: upload + delete-remote', base: [b], local: [moved, { ...moved, path: 'c.txt' }], remote: [RB(b)], want: ['upload c.txt new@null', 'upload x/b.txt new@null', 'delete-remote a.txt'] });
}
// Rules 20-21: the base's file left, another file took its path.
{
  const b = B('a.txt', { f: 'F' });
  row({ name: '20 remote replaced a file (delete + new file) over an unchanged local -> download the new one', base: [b], local: [LB(b)], remote: [RB(b, { v: 'v2', deleted: true }), R('G', 'a.txt', { h: 'hG', seq: 5 })], want: ['download a.txt G@v1 over F@v1'] });
  row({ name: '21 remote replaced a file over a local edit -> conflict', base: [b], local: [LB(b, 'h2')], remote: [RB(b, { v: 'v2', deleted: true }), R('G', 'a.txt', { h: 'hG', seq: 5 })], want: [`conflict a.txt -> a (conflict pc ${STAMP}).txt remote=G@v1`] });
  row({ name: '21b swap of two names remotely -> both downloaded, nothing lost', base: [b, B('b.txt', { f: 'G', h: 'hG' })], local: [LB(b), L('b.txt', { h: 'hG' })], remote: [R('F', 'b.txt', { v: 'v2' }), R('G', 'a.txt', { v: 'v2', h: 'hG' })], want: ['download a.txt G@v2 over F@v1', 'download b.txt F@v2 over G@v1'] });
}
// Rule 22: refused.
row({ name: '22 remote name Windows cannot hold, on win32 -> refuse', remote: [R('F', 'CON.txt')], options: { platform: 'win32' }, want: ['refuse CON.txt'] });
row({ name: '22b same name on Linux (portable mode only warns) -> download', remote: [R('F', 'CON.txt')], options: { platform: 'linux' }, want: ['download CON.txt F@v1'] });
row({ name: '22c trailing dot and reserved characters on win32 -> refuse', remote: [R('F', 'a./b.txt'), R('G', 'q?.txt')], options: { platform: 'win32' }, want: ['refuse q?.txt', 'refuse a./b.txt'] });
row({ name: '22d a remote file named like our temp files -> refuse', remote: [R('F', 'd/.kluis-tmp-123')], want: ['refuse d/.kluis-tmp-123'] });
{
  const b = B('a.txt', { f: 'F' });
  row({ name: '22e remote move to a refused name keeps the local copy', base: [b], local: [LB(b)], remote: [RB(b, { v: 'v2', path: 'b|c.txt' })], options: { platform: 'win32' }, want: ['none a.txt', 'refuse b|c.txt'] });
  row({ name: '22f two remote files at one path -> the older one is downloaded, the other refused', remote: [R('G', 'n.txt', { seq: 9, h: 'hG' }), R('F', 'n.txt', { seq: 3 })], want: ['download n.txt F@v1', 'refuse n.txt'] });
  row({ name: '22g two remote files at one path -> the one this device has wins', base: [B('n.txt', { f: 'G', h: 'hG' })], local: [L('n.txt', { h: 'hG' })], remote: [R('G', 'n.txt', { seq: 9, h: 'hG' }), R('F', 'n.txt', { seq: 3 })], want: ['none n.txt', 'refuse n.txt'] });
}
row({ name: '22h case clash with a local file on a case-insensitive disk -> refuse the remote one', local: [L('Readme.md', { h: 'hL' })], remote: [R('F', 'README.md')], options: { caseInsensitive: true }, want: ['refuse README.md', 'upload Readme.md new@null'] });
row({ name: '22i same names on a case-sensitive disk -> both kept', local: [L('Readme.md', { h: 'hL' })], remote: [R('F', 'README.md')], want: ['download README.md F@v1', 'upload Readme.md new@null'] });
row({ name: '22j two remote names differing in case, case-insensitive -> lowest seq wins', remote: [R('F', 'a.txt', { seq: 4 }), R('G', 'A.txt', { seq: 2 })], options: { caseInsensitive: true }, want: ['download A.txt G@v1', 'refuse a.txt'] });
{
  const b = B('readme.md', { f: 'F' });
  row({ name: '22k a case-only remote rename on a case-insensitive disk -> move-local', base: [b], local: [LB(b)], remote: [RB(b, { v: 'v2', path: 'README.md' })], options: { caseInsensitive: true }, want: ['move-local readme.md -> README.md'] });
}
// Rule 23: unknown.
{
  const b = B('a.txt');
  row({ name: '23 a settling file (not in the scan) is not a deletion', base: [b], remote: [RB(b)], options: { unknown: ['a.txt'] }, want: ['none a.txt'] });
  const c = B('d/e/c.txt');
  row({ name: '23b an unreadable folder hides its subtree, remote edits wait', base: [c], remote: [RB(c, { v: 'v2', h: 'h2' }), R('N', 'd/e/new.txt')], options: { unknown: ['d'] }, want: ['none d/e/c.txt', 'none d/e/new.txt'] });
}
// Folders.
row({ name: 'dir: new empty local folder -> upload', local: [L('empty', { kind: 'dir' })], want: ['upload empty new@null'] });
row({ name: 'dir: new remote folder -> download (mkdir) before its child', remote: [R('C', 'D/x.txt'), R('D', 'D', { kind: 'dir' })], want: ['download D D@v1', 'download D/x.txt C@v1'] });
{
  const d = B('D', { kind: 'dir' });
  const x = B('D/x.txt');
  const y = B('D/E/y.txt');
  const e = B('D/E', { kind: 'dir' });
  row({ name: 'dir: local folder deleted, remote unchanged -> delete-remote, children first', base: [d, x, e, y], remote: [RB(d), RB(x), RB(e), RB(y)], want: ['delete-remote D/E/y.txt', 'delete-remote D/E', 'delete-remote D/x.txt', 'delete-remote D'] });
  row({ name: 'dir: local folder deleted, remote added a file in it -> re-create the folder, download the file', base: [d, x], remote: [RB(d), RB(x), R('N', 'D/new.txt')], want: ['download D F-D@v1 over F-D@v1', 'download D/new.txt N@v1', 'delete-remote D/x.txt'] });
  row({ name: 'dir: local folder deleted, remote dir changed -> download', base: [d], remote: [RB(d, { v: 'v2' })], want: ['download D F-D@v2 over F-D@v1'] });
  row({ name: 'dir: remote deleted an unchanged folder -> delete-local, children first', base: [d, x, e, y], local: [LB(d), LB(x), LB(e), LB(y)], remote: [RB(d, { v: 'v2', deleted: true }), RB(x, { v: 'v2', deleted: true }), RB(e, { v: 'v2', deleted: true }), RB(y, { v: 'v2', deleted: true })], want: ['delete-local D/E/y.txt', 'delete-local D/E', 'delete-local D/x.txt', 'delete-local D'] });
  row({ name: 'dir: remote deleted a folder that still has a new local file -> keep the folder (upload it again)', base: [d, x], local: [LB(d), LB(x), L('D/mine.txt')], remote: [RB(d, { v: 'v2', deleted: true }), RB(x, { v: 'v2', deleted: true })], want: ['upload D F-D@v2', 'upload D/mine.txt new@null', 'delete-local D/x.txt'] });
  row({ name: 'dir: remote deleted a folder whose child was edited locally -> child and folder uploaded', base: [d, x], local: [LB(d), LB(x, 'h9')], remote: [RB(d, { v: 'v2', deleted: true }), RB(x, { v: 'v2', deleted: true })], want: ['upload D F-D@v2', 'upload D/x.txt F-D/x.txt@v2'] });
  row({ name: 'dir: remote folder rename -> new folder, children moved, old folder removed last', base: [d, x], local: [LB(d), LB(x)], remote: [RB(d, { v: 'v2', path: 'N' }), RB(x, { v: 'v2', path: 'N/x.txt' })], want: ['move-local D/x.txt -> N/x.txt', 'download N F-D@v2', 'delete-local D'] });
}
{
  const d = B('D', { kind: 'dir', ino: 501 });
  const x = B('D/x.txt', { ino: 502 });
  row({ name: 'dir: local folder rename -> move-remote of the folder and its children, no upload', base: [d, x], local: [{ ...LB(d), path: 'N' }, { ...LB(x), path: 'N/x.txt' }], remote: [RB(d), RB(x)], want: ['move-remote D -> N', 'move-remote D/x.txt -> N/x.txt'] });
  row({ name: 'dir: a local folder replaced by a file -> upload over the base', base: [d], local: [L('D', { h: 'hF' })], remote: [RB(d)], want: ['upload D F-D@v1'] });
}
{
  const b = B('a.txt', { f: 'F' });
  row({ name: 'index without remote state: edits go up on the base, nothing is deleted', base: [b, B('gone.txt', { f: 'Q' })], local: [LB(b, 'h2')], want: ['upload a.txt F@v1', 'none gone.txt'] });
  row({ name: 'conflict copy name avoids an existing local file', base: [b], local: [LB(b, 'h3'), L(`a (conflict pc ${STAMP}).txt`, { h: 'hZ' })], remote: [RB(b, { v: 'v2', h: 'h2' })], want: [`upload a (conflict pc ${STAMP}).txt new@null`, `conflict a.txt -> a (conflict pc ${STAMP} 2).txt remote=F@v2`] });
  row({ name: 'a deleted remote file with no base is no reason to touch a new local file', local: [L('a.txt', { h: 'h5' })], remote: [R('F', 'a.txt', { deleted: true })], want: ['upload a.txt new@null'] });
}

for (const r of rows) {
  test(`reconcile: ${r.name}`, (t) => {
    const actions = reconcile(byPath(r.base), byPath(r.local), byFile(r.remote), opts(r.options));
    t.deepEqual(actions.map(show), r.want);
  });
}

test('reconcile: the table has at least 30 rows', (t) => {
  t.true(rows.length >= 30, String(rows.length));
});

// ---------------------------------------------------------------- generated states

/** Small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

// KLUIS_FUZZ_SEED / KLUIS_FUZZ_RUNS explore other generated states (the defaults are what CI runs).
const FUZZ_SEED = Number(process.env.KLUIS_FUZZ_SEED ?? 0);
const FUZZ_RUNS = Number(process.env.KLUIS_FUZZ_RUNS ?? 1);

const PATHS = ['a', 'b', 'c', 'd', 'd/x', 'd/y', 'd/e', 'd/e/z', 'A'];
const HASHES = ['h1', 'h2', 'h3'];

interface State {
  base: Map<string, BaseEntry>;
  local: Map<string, LocalEntry>;
  remote: Map<string, RemoteEntry>;
  unknown: string[];
}

function randomState(rand: () => number): State {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const kindOf = (p: string): EntryKind => (p === 'd' || p === 'd/e' ? 'dir' : 'file');
  const base = new Map<string, BaseEntry>();
  const local = new Map<string, LocalEntry>();
  const remote = new Map<string, RemoteEntry>();
  let seq = 1;
  for (const p of PATHS) {
    if (rand() < 0.6) {
      const kind = kindOf(p);
      const b = B(p, { f: `F${p}`, kind, h: kind === 'dir' ? EMPTY : pick(HASHES), ino: 1 + Math.floor(rand() * 12) });
      base.set(p, b);
    }
  }
  for (const b of base.values()) {
    const roll = rand();
    if (roll < 0.4) remote.set(b.fileId, RB(b, { seq: seq++ }));
    else if (roll < 0.6) remote.set(b.fileId, RB(b, { v: 'v2', h: b.kind === 'dir' ? EMPTY : pick(HASHES), seq: seq++ }));
    else if (roll < 0.75) remote.set(b.fileId, RB(b, { v: 'v2', deleted: true, seq: seq++ }));
    else if (roll < 0.9) remote.set(b.fileId, RB(b, { v: 'v2', path: pick(PATHS), seq: seq++ }));
    // else: no remote state for this file
  }
  for (let i = 0; i < 3; i++) {
    if (rand() < 0.5) {
      const p = pick(PATHS);
      remote.set(`N${i}`, R(`N${i}`, p, { kind: kindOf(p), h: kindOf(p) === 'dir' ? EMPTY : pick(HASHES), seq: 1 + Math.floor(rand() * 20), deleted: rand() < 0.2 }));
    }
  }
  for (const p of PATHS) {
    const b = base.get(p);
    const roll = rand();
    if (b && roll < 0.45) local.set(p, LB(b));
    else if (roll < 0.75) {
      const kind = rand() < 0.85 ? kindOf(p) : (kindOf(p) === 'dir' ? 'file' : 'dir');
      local.set(p, L(p, { kind, h: kind === 'dir' ? EMPTY : pick(HASHES), ino: 1 + Math.floor(rand() * 12), size: 10, mtime: 5000 }));
    }
  }
  const unknown = rand() < 0.2 ? [pick(PATHS)] : [];
  return { base, local, remote, unknown };
}

function underUnknown(p: string, unknown: string[]): boolean {
  return unknown.some((u) => p === u || p.startsWith(`${u}/`));
}

function checkInvariants(s: State, actions: SyncAction[]): string | null {
  const same = (l: LocalEntry | undefined, b: BaseEntry | undefined | null): boolean => !!l && !!b && l.kind === b.kind && l.hash === b.hash;
  const primary = new Map<string, string>();
  const vacated = new Set<string>(); // sources of move-local: empty once the move (which runs first) is done
  let seenDeletion = false;
  let lastDeletionDepth = Infinity;
  for (const a of actions) {
    const isDeletion = a.type === 'delete-local' || a.type === 'delete-remote';
    if (isDeletion) {
      const depth = a.path.split('/').length;
      if (depth > lastDeletionDepth) return `deletion order: ${a.path} after a shallower deletion`;
      lastDeletionDepth = depth;
      seenDeletion = true;
    } else if (seenDeletion) return `${a.type} after a deletion`;
    const paths = a.type === 'move-local' || a.type === 'move-remote' ? [a.to] : [a.path];
    if (a.type === 'move-local') vacated.add(a.from);
    if (a.type !== 'none' && a.type !== 'refuse') {
      for (const p of paths) {
        if (underUnknown(p, s.unknown)) return `${a.type} on unknown path ${p}`;
        if (primary.has(p)) return `two actions for ${p}: ${primary.get(p)} and ${a.type}`;
        primary.set(p, a.type);
      }
    }
    const l = 'path' in a && !vacated.has(a.path) ? s.local.get(a.path) : undefined;
    switch (a.type) {
      case 'delete-local':
        // Never lose a byte: only content equal to the synced base may be deleted.
        if (!same(l, s.base.get(a.path)) || a.base !== s.base.get(a.path)) return `delete-local of changed content at ${a.path}`;
        break;
      case 'download':
        if (l && !(a.base && a.base === s.base.get(a.path) && same(l, a.base))) return `download over changed local content at ${a.path}`;
        break;
      case 'move-local':
        if (!same(s.local.get(a.from), s.base.get(a.from)) || s.local.has(a.to)) return `unsafe move-local ${a.from} -> ${a.to}`;
        break;
      case 'delete-remote': {
        const r = s.remote.get(a.base.fileId);
        if (!r || r.deleted || r.versionId !== a.base.versionId) return `delete-remote over a remote change at ${a.path}`;
        break;
      }
      case 'conflict':
        if (s.local.has(a.conflictPath) || s.base.has(a.conflictPath)) return `conflict copy ${a.conflictPath} overwrites something`;
        break;
      case 'upload': {
        const { parent } = uploadTarget(a);
        const r = a.remote;
        if (r && !r.deleted && r.versionId !== a.base?.versionId) return `upload on a stale parent at ${a.path}`;
        if (parent !== null && !r && a.base === null) return 'parent without base';
        break;
      }
      default:
        break;
    }
  }
  // Every local path whose content is not the base's must still be there afterwards: not deleted, not overwritten.
  for (const l of s.local.values()) {
    if (same(l, s.base.get(l.path))) continue;
    for (const a of actions) {
      if ((a.type === 'delete-local' || a.type === 'download') && a.path === l.path) return `changed local ${l.path} lost by ${a.type}`;
      if (a.type === 'move-local' && a.from === l.path) return `changed local ${l.path} moved as if unchanged`;
    }
  }
  return null;
}

test('reconcile (generated): identical base, local and remote give only "none"', (t) => {
  const rand = prng(42);
  for (let i = 0; i < 500; i++) {
    const s = randomState(rand);
    const local = new Map([...s.base.values()].map((b) => [b.path, LB(b)]));
    const remote = new Map([...s.base.values()].map((b) => [b.fileId, RB(b)]));
    const actions = reconcile(s.base, local, remote, opts());
    t.true(actions.every((a) => a.type === 'none'), JSON.stringify(actions.map(show)));
    t.is(actions.length, s.base.size);
  }
});

test('reconcile (generated): never lose a byte, one action per path, deletions last and deepest first', (t) => {
  const rand = prng(7 + FUZZ_SEED);
  let checked = 0;
  const seen = new Set<string>();
  for (let i = 0; i < 5000 * FUZZ_RUNS; i++) {
    const s = randomState(rand);
    const ci = rand() < 0.3;
    const actions = reconcile(s.base, s.local, s.remote, opts({ unknown: s.unknown, caseInsensitive: ci }));
    for (const a of actions) seen.add(a.type);
    const problem = checkInvariants(s, actions);
    if (problem) {
      t.fail(`${problem}\nbase ${JSON.stringify([...s.base.values()])}\nlocal ${JSON.stringify([...s.local.values()])}\nremote ${JSON.stringify([...s.remote.values()])}\nunknown ${JSON.stringify(s.unknown)}\n${actions.map(show).join('\n')}`);
      return;
    }
    // Deterministic: the same input gives the same output.
    t.deepEqual(reconcile(s.base, s.local, s.remote, opts({ unknown: s.unknown, caseInsensitive: ci })).map(show), actions.map(show));
    checked++;
  }
  t.is(checked, 5000 * FUZZ_RUNS);
  // The generator reaches every kind of action, so the invariants were exercised on all of them.
  t.deepEqual([...seen].sort(), ['conflict', 'delete-local', 'delete-remote', 'download', 'move-local', 'move-remote', 'none', 'record', 'refuse', 'upload']);
});

// ---------------------------------------------------------------- simulation: apply the actions, reconcile again

/** Applies actions to a flat model of disk + index + server, as the engine would; returns the hashes uploaded. */
function applyModel(s: State, actions: SyncAction[], uploaded: Set<string>, counter: { n: number }): void {
  const fresh = (p: string) => `${p}#${counter.n++}`;
  const baseOf = (r: RemoteEntry, l: LocalEntry, path = r.path): BaseEntry => ({
    path, kind: r.kind, fileId: r.fileId, versionId: r.versionId, hash: r.hash, size: r.size, mtimeMs: r.mtimeMs, localSize: l.size, localMtimeMs: l.mtimeMs, localIno: l.ino,
  });
  const commit = (fileId: string, path: string, l: LocalEntry | null, prev: RemoteEntry | undefined, deleted: boolean): RemoteEntry => {
    const r: RemoteEntry = { fileId, versionId: fresh('v'), seq: counter.n++, path, kind: l?.kind ?? prev?.kind ?? 'file', size: 10, mtimeMs: 1000, hash: l?.hash ?? prev?.hash ?? EMPTY, deleted, chunks: [], keyEpoch: 1 };
    s.remote.set(fileId, r);
    if (l && !deleted) uploaded.add(l.hash);
    return r;
  };
  const writeLocal = (path: string, r: RemoteEntry): LocalEntry => {
    const l: LocalEntry = { path, kind: r.kind, size: 10, mtimeMs: 9000 + counter.n, ino: 100 + counter.n++, hash: r.hash };
    s.local.set(path, l);
    return l;
  };
  for (const a of actions) {
    switch (a.type) {
      case 'upload': {
        const target = uploadTarget(a);
        const fileId = target.fileId ?? fresh('F');
        const head = s.remote.get(fileId);
        if (target.parent !== null && head && head.versionId !== target.parent) break; // 409: the next pass sees it
        const r = commit(fileId, a.path, a.local, head, false);
        s.base.set(a.path, baseOf(r, a.local));
        break;
      }
      case 'download':
        s.base.set(a.path, baseOf(a.remote, writeLocal(a.path, a.remote)));
        break;
      case 'delete-remote':
        commit(a.base.fileId, a.path, null, a.remote, true);
        s.base.delete(a.path);
        break;
      case 'delete-local': {
        if (a.local.kind === 'dir' && [...s.local.keys()].some((p) => p.startsWith(`${a.path}/`))) break; // rmdir: not empty
        s.local.delete(a.path);
        s.base.delete(a.path);
        break;
      }
      case 'conflict': {
        const copy = { ...a.local, path: a.conflictPath };
        s.local.set(a.conflictPath, copy);
        const r = commit(fresh('F'), a.conflictPath, copy, undefined, false);
        s.base.set(a.conflictPath, baseOf(r, copy));
        s.base.set(a.path, baseOf(a.remote, writeLocal(a.path, a.remote)));
        break;
      }
      case 'record':
        if (a.remote && !a.remote.deleted && a.local) s.base.set(a.path, baseOf(a.remote, a.local));
        else s.base.delete(a.path);
        break;
      case 'move-local': {
        const l = { ...s.local.get(a.from)!, path: a.to };
        s.local.delete(a.from);
        s.local.set(a.to, l);
        s.base.delete(a.from);
        s.base.set(a.to, baseOf(a.remote, l));
        break;
      }
      case 'move-remote': {
        const r = commit(a.base.fileId, a.to, a.local, a.remote, false);
        s.base.delete(a.from);
        s.base.set(a.to, baseOf(r, a.local));
        break;
      }
      default:
        break;
    }
  }
}

test('reconcile (simulated): applying the actions converges, both sides agree, and no local content is lost', (t) => {
  const rand = prng(2026 + FUZZ_SEED);
  for (let i = 0; i < 3000 * FUZZ_RUNS; i++) {
    const s = randomState(rand);
    s.unknown = [];
    const ci = rand() < 0.3;
    const before = [...s.local.values()].filter((l) => l.kind === 'file').map((l) => l.hash);
    const onServer = new Set<string>([...s.remote.values()].map((r) => r.hash).concat([...s.base.values()].map((b) => b.hash)));
    const uploaded = new Set<string>();
    const counter = { n: 0 };
    const dump = () => `base ${JSON.stringify([...s.base.values()])}\nlocal ${JSON.stringify([...s.local.values()])}\nremote ${JSON.stringify([...s.remote.values()])}`;
    const start = dump();
    let actions: SyncAction[] = [];
    let pass = 0;
    for (; pass < 4; pass++) {
      actions = reconcile(s.base, s.local, s.remote, opts({ caseInsensitive: ci }));
      if (actions.every((a) => a.type === 'none' || a.type === 'refuse')) break;
      applyModel(s, actions, uploaded, counter);
    }
    if (pass === 4) {
      t.fail(`no convergence after 4 passes (ci=${ci})\nstart:\n${start}\nnow:\n${dump()}\n${actions.map(show).join('\n')}`);
      return;
    }
    // Agreement: every live remote file that is not refused is on disk with its content, and the other way round.
    const refused = new Set(actions.filter((a) => a.type === 'refuse').map((a) => a.path));
    for (const r of s.remote.values()) {
      if (r.deleted || refused.has(r.path)) continue;
      const l = s.local.get(r.path);
      if (!l || l.hash !== r.hash || l.kind !== r.kind) {
        if (s.base.get(r.path)?.fileId !== r.fileId) continue; // a second remote file at a path: refused above
        t.fail(`remote ${r.path} not on disk\n${start}\n${dump()}`);
        return;
      }
    }
    for (const l of s.local.values()) {
      const b = s.base.get(l.path);
      const r = b ? s.remote.get(b.fileId) : undefined;
      if (b && !r) continue; // the index has no remote state for this file: by design nothing happens (see 'unknown')
      if (r && !r.deleted && r.path !== l.path && refused.has(r.path)) continue; // moved to a refused path: kept here
      if (!b || !r || r.deleted || r.path !== l.path || r.hash !== l.hash) {
        t.fail(`local ${l.path} not on the server\nstart:\n${start}\nnow:\n${dump()}`);
        return;
      }
    }
    // Never lose a byte: every local content from the start is on disk, or was uploaded, or was already on the server.
    const now = new Set([...s.local.values()].map((l) => l.hash));
    for (const h of before) {
      if (!now.has(h) && !uploaded.has(h) && !onServer.has(h)) {
        t.fail(`local content ${h} lost\nstart:\n${start}\nnow:\n${dump()}`);
        return;
      }
    }
  }
  t.pass();
});
