// An independent reader of Kluis storage (issue 20 §4, "No lock-in"), written from docs/storage.md and docs/crypto.md
// alone: given a copy of the server's sqlite database, its fs object store and one member's e-mail and password, it
// rebuilds the plaintext tree of a space. It imports no Kluis code (only libsodium and the sqlite3 driver) so that it
// proves the documents, not the implementation: where it needed more than the documents said, the documents were fixed.
import { mkdir, open, readFile, utimes, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import { openWrapV2 } from './batch-wrap.js';
import { openBatchManifestPlain } from './manifest-batch.js';
import { heldDuringEpoch, verifyLog, writerAt, type VerifiedLog } from './membership.js';
import { uploadManifestOk, uploadRules, type UploadRule } from './requests.js';
import {
  b64u, blake2b256, canonical, concat, equal, fromHex, hex, kdf, masterKeyOf, openEnvelope, openKeyBundle, openSealedKey, parseCanonical,
  publicOf, ready, sodium, utf8, verifySigned,
} from './primitives.js';

export interface ReadOptions {
  /** the sqlite file (KLUIS_DATA_DIR/kluis.sqlite3) */
  dbFile: string;
  /** the fs store's root (KLUIS_DATA_DIR/blobs) */
  blobRoot: string;
  email: string;
  password: string;
  spaceId: string;
  /** where the tree is written (must exist) */
  outDir: string;
}

export interface ReadResult {
  files: number;
  folders: number;
  /** path -> hex BLAKE2b-256 of the content written there ('dir' for a folder) */
  tree: Map<string, string>;
  /** path -> file id */
  fileIds: Map<string, string>;
}

type Row = Record<string, unknown>;

function query(db: sqlite3.Database, sql: string, params: unknown[] = []): Promise<Row[]> {
  return new Promise((resolve, reject) => db.all(sql, params, (err, rows) => (err ? reject(err) : resolve(rows as Row[]))));
}

/** docs/storage.md §2.1 */
export function storageName(orgId: string): string {
  if (/^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/.test(orgId) && !orgId.includes('--') && !orgId.endsWith('-s3alias')) return `o-${orgId}`;
  return `h-${createHash('sha256').update(orgId, 'utf8').digest('hex').slice(0, 40)}`;
}

/** docs/storage.md §2.1: the fs store's file of an object key. */
const objectFile = (root: string, key: string) => `${path.join(root, ...key.split('/'))}@`;

async function readRange(file: string, offset: number, length: number): Promise<Uint8Array> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    if (bytesRead !== length) throw new Error(`${file}: short read`);
    return buf;
  } finally {
    await fh.close();
  }
}

/** A space path made safe for the target folder (crypto.md §8's rules, plus: it must stay inside). */
function inside(root: string, rel: string): string {
  const segments = rel.split('/');
  // eslint-disable-next-line no-control-regex
  if (rel !== rel.normalize('NFC') || rel.includes('\\') || /[\u0000-\u001f\u007f]/.test(rel) || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new Error(`unsafe path ${JSON.stringify(rel)}`);
  }
  const abs = path.resolve(root, ...segments);
  if (!abs.startsWith(path.resolve(root) + path.sep)) throw new Error(`path ${JSON.stringify(rel)} leaves the folder`);
  return abs;
}

interface Manifest {
  v: 1 | 2; memberSeq?: number; fileId: string; versionId: string; parent: string | null; path: string; kind: 'file' | 'dir';
  size: number; mtimeMs: number; chunks: [string, number][]; hash: string; deleted: boolean;
}

/** docs/storage.md §3.1–3.2: the member's keys, the verified log and every space key pair they can reach. */
async function spaceKeys(db: sqlite3.Database, o: ReadOptions): Promise<{ orgId: string; log: VerifiedLog; pairs: Map<number, { pk: Uint8Array; sk: Uint8Array }> }> {
  const [user] = await query(db, 'SELECT id, kdf_salt, kdf_ops, kdf_mem, key_bundle FROM users WHERE email = ?', [o.email]);
  if (!user) throw new Error(`no user ${o.email}`);
  const account = openKeyBundle(JSON.parse(String(user.key_bundle)), masterKeyOf(o.password, b64u(String(user.kdf_salt)), Number(user.kdf_ops), Number(user.kdf_mem)));
  const [space] = await query(db, 'SELECT org_id FROM spaces WHERE id = ?', [o.spaceId]);
  if (!space) throw new Error(`no space ${o.spaceId}`);
  const rows = await query(db, 'SELECT seq, entry, hash FROM space_log WHERE space_id = ? ORDER BY seq', [o.spaceId]);
  const log = verifyLog(o.spaceId, rows.map((r) => ({ seq: Number(r.seq), entry: String(r.entry), hash: String(r.hash) })));
  // The newest epoch this member holds a wrap of (crypto.md §4), then down the epoch chain.
  const [w] = await query(db, 'SELECT key_epoch, wrap FROM space_key_wraps WHERE space_id = ? AND user_id = ? ORDER BY key_epoch DESC LIMIT 1', [o.spaceId, user.id]);
  if (!w) throw new Error('the member holds no key of this space');
  const wrap = JSON.parse(String(w.wrap)) as Record<string, unknown> & { keyEpoch: number; sealed: string; signer: string; sig: string; spacePublicKey: string; recipient: string };
  const { sig, ...unsigned } = wrap;
  if (wrap.v !== 1 || wrap.kind !== 'space-key' || wrap.spaceId !== o.spaceId || wrap.keyEpoch !== Number(w.key_epoch)) throw new Error('space-key wrap: wrong fields');
  if (!verifySigned('kluis/wrap/v1', utf8(canonical(unsigned)), b64u(sig), b64u(wrap.signer))) throw new Error('space-key wrap: bad signature');
  if (!heldDuringEpoch(log, wrap.keyEpoch, wrap.signer, ['manager'])) throw new Error('space-key wrap: not signed by a manager of its epoch');
  const pk = log.epochKeys.get(wrap.keyEpoch);
  if (!pk || !equal(pk, b64u(wrap.spacePublicKey)) || !equal(b64u(wrap.recipient), account.encPublicKey)) throw new Error('space-key wrap: not this epoch\'s key or not sealed to this member');
  const pairs = new Map<number, { pk: Uint8Array; sk: Uint8Array }>();
  let sk = openSealedKey(b64u(wrap.sealed), account.encPublicKey, account.encSecretKey);
  for (let e = wrap.keyEpoch; ; e--) {
    const epk = log.epochKeys.get(e)!;
    if (!equal(publicOf(sk), epk)) throw new Error(`epoch ${e}: the secret key does not match the log's public key`);
    pairs.set(e, { pk: epk, sk });
    if (e === 1) break;
    const [row] = await query(db, 'SELECT prev_sealed FROM space_epochs WHERE space_id = ? AND key_epoch = ?', [o.spaceId, e]);
    sk = openSealedKey(b64u(String(row?.prev_sealed)), epk, sk);
  }
  return { orgId: String(space.org_id), log, pairs };
}

/** docs/storage.md §3.3: a file's key of one epoch, from its signed wrap. */
async function fileKeyOf(db: sqlite3.Database, o: ReadOptions, log: VerifiedLog, pair: { pk: Uint8Array; sk: Uint8Array }, fileId: string, epoch: number, upload?: UploadRule): Promise<Uint8Array> {
  const rows = await query(db, 'SELECT wrap FROM file_key_wraps WHERE file_id = ? AND key_epoch = ?', [fileId, epoch]);
  for (const r of rows) {
    const wrap = JSON.parse(String(r.wrap)) as Record<string, unknown> & { sig: string; signer: string; recipient: string; sealed: string };
    if (!equal(b64u(wrap.recipient), pair.pk)) continue;
    const byUpload = upload?.requestPublicKey === wrap.signer && upload.keyEpoch === epoch;
    if (wrap.v === 2) {
      const opened = openWrapV2(wrap, { spaceId: o.spaceId, fileId, keyEpoch: epoch }, pair);
      if (!heldDuringEpoch(log, epoch, opened.signer, ['editor', 'manager']) && !byUpload) throw new Error('file-key wrap: not signed by a writer of its epoch');
      return opened.fileKey;
    }
    const { sig, ...unsigned } = wrap;
    if (wrap.v !== 1 || wrap.kind !== 'file-key' || wrap.spaceId !== o.spaceId || wrap.fileId !== fileId || wrap.keyEpoch !== epoch) throw new Error('file-key wrap: wrong fields');
    if (!verifySigned('kluis/wrap/v1', utf8(canonical(unsigned)), b64u(sig), b64u(wrap.signer))) throw new Error('file-key wrap: bad signature');
    if (!heldDuringEpoch(log, epoch, wrap.signer, ['editor', 'manager']) && !byUpload) throw new Error('file-key wrap: not signed by a writer of its epoch');
    return openSealedKey(b64u(wrap.sealed), pair.pk, pair.sk);
  }
  throw new Error(`file ${fileId}: no key of epoch ${epoch} sealed to the space`);
}

/** crypto.md §8: the sealed manifest of a `versions` row, opened and judged. */
function openManifest(log: VerifiedLog, fileKey: Uint8Array, row: Row, upload?: UploadRule): Manifest {
  const fileId = b64u(String(row.file_id));
  const versionId = b64u(String(row.id));
  const plain = openEnvelope(kdf(3, 'kluisfil', fileKey), new Uint8Array(row.manifest as Buffer), concat(utf8('kluis/manifest/v1'), fileId, versionId));
  let signer = plain.subarray(0, 32);
  let body = plain.subarray(96);
  if (plain[96] === 0x03) ({ signer, body } = openBatchManifestPlain(plain, fileId, versionId));
  else if (!verifySigned('kluis/manifest/v1', concat(fileId, versionId, body), plain.subarray(32, 96), signer)) throw new Error('manifest: bad signature');
  const m = parseCanonical<Manifest>(new TextDecoder('utf-8', { fatal: true }).decode(body));
  if (plain[96] === 0x03 && m.v !== 2) throw new Error('manifest v3: the body is not a version-2 manifest');
  if (m.fileId !== row.file_id || m.versionId !== row.id || m.deleted !== Boolean(row.deleted)) throw new Error('manifest: not this version\'s');
  const signerB64 = sodium.to_base64(signer, sodium.base64_variants.URLSAFE_NO_PADDING);
  if (!writerAt(log, signerB64, m.v === 2 ? m.memberSeq! : null) && !uploadManifestOk(upload, signerB64, m, Number(row.created_at))) throw new Error('manifest: not signed by a writer');
  if (m.chunks.reduce((n, [, s]) => n + s, 0) !== m.size) throw new Error('manifest: chunk sizes do not add up');
  return m;
}

/** docs/storage.md §3.4 and §2.2: one chunk's plaintext, from its pack or its own object, checked against its id. */
async function chunkOf(db: sqlite3.Database, spaceDir: string, spaceId: string, fileKey: Uint8Array, chunkId: string, size: number): Promise<Uint8Array> {
  const [c] = await query(db, 'SELECT length, pack_id, "offset" FROM chunks WHERE space_id = ? AND id = ?', [spaceId, chunkId]);
  if (!c) throw new Error(`chunk ${chunkId} is not stored`);
  const cipher = c.pack_id === null
    ? new Uint8Array(await readFile(objectFile(spaceDir, `chunks/${chunkId}`)))
    : await readRange(objectFile(spaceDir, `packs/${String(c.pack_id)}`), Number(c.offset), Number(c.length));
  if (cipher.length !== Number(c.length)) throw new Error(`chunk ${chunkId}: not its stored length`);
  const raw = fromHex(chunkId);
  const plain = openEnvelope(kdf(1, 'kluisfil', fileKey), cipher, concat(utf8('kluis/chunk/v1'), raw));
  if (!equal(blake2b256(plain, kdf(2, 'kluisfil', fileKey)), raw)) throw new Error(`chunk ${chunkId}: id mismatch`);
  if (plain.length !== size) throw new Error(`chunk ${chunkId}: not the manifest's size`);
  return plain;
}

interface Store {
  db: sqlite3.Database;
  o: ReadOptions;
  log: VerifiedLog;
  pairs: Map<number, { pk: Uint8Array; sk: Uint8Array }>;
  spaceDir: string;
  /** files that came through a file request (storage.md §3.5) */
  uploads: Map<string, UploadRule>;
}

/** Opens the database read-only with the member's keys and the space's; `fn` runs with them, then it closes. */
async function withStore<T>(o: ReadOptions, fn: (s: Store) => Promise<T>): Promise<T> {
  await ready();
  const db = new sqlite3.Database(o.dbFile, sqlite3.OPEN_READONLY);
  try {
    const { orgId, log, pairs } = await spaceKeys(db, o);
    const rows = await query(db, 'SELECT u.file_id, u.version_id, u.receipt, r."grant" FROM request_uploads u JOIN file_requests r ON r.id = u.request_id WHERE r.space_id = ? ORDER BY u.version_id', [o.spaceId]);
    const uploads = uploadRules(o.spaceId, log, pairs, rows as { file_id: string; version_id: string; receipt: string; grant: string }[]);
    return await fn({ db, o, log, pairs, uploads, spaceDir: path.join(o.blobRoot, storageName(orgId), 'spaces', o.spaceId) });
  } finally {
    await new Promise<void>((resolve) => db.close(() => resolve()));
  }
}

/** A `versions` row's manifest, opened with its file's key of the version's epoch (storage.md §4 steps 5–6). */
async function versionOf(s: Store, row: Row): Promise<{ m: Manifest; fileKey: Uint8Array }> {
  const epoch = Number(row.key_epoch);
  const pair = s.pairs.get(epoch);
  if (!pair) throw new Error(`version ${String(row.id)}: no space key of epoch ${epoch}`);
  const upload = s.uploads.get(String(row.file_id));
  const fileKey = await fileKeyOf(s.db, s.o, s.log, pair, String(row.file_id), epoch, upload);
  return { m: openManifest(s.log, fileKey, row, upload), fileKey };
}

/** A file version's content, every chunk checked, the whole against the manifest's size and hash (step 7). */
async function contentOf(s: Store, m: Manifest, fileKey: Uint8Array): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (const [id, size] of m.chunks) parts.push(await chunkOf(s.db, s.spaceDir, s.o.spaceId, fileKey, id, size));
  const content = concat(...parts);
  if (content.length !== m.size || hex(blake2b256(content)) !== m.hash) throw new Error(`${m.path}: content does not match its manifest`);
  return content;
}

/** Any version of the space (storage.md §4 "History"): its manifest and, for a file that is not a deletion, its content. */
export async function readVersion(o: ReadOptions, versionId: string): Promise<{ path: string; deleted: boolean; content: Uint8Array | null }> {
  return withStore(o, async (s) => {
    const [row] = await query(s.db, 'SELECT * FROM versions WHERE id = ? AND space_id = ?', [versionId, o.spaceId]);
    if (!row) throw new Error(`no version ${versionId} in the space`);
    if (row.expired_at !== null) throw new Error(`version ${versionId} expired: its chunks may be gone`);
    const { m, fileKey } = await versionOf(s, row);
    return { path: m.path, deleted: m.deleted, content: m.kind === 'file' && !m.deleted ? await contentOf(s, m, fileKey) : null };
  });
}

/** The ids of a file's versions, oldest first (by `seq`). */
export async function versionIds(o: ReadOptions, fileId: string): Promise<string[]> {
  return withStore(o, async (s) => (await query(s.db, 'SELECT id FROM versions WHERE file_id = ? AND space_id = ? ORDER BY seq', [fileId, o.spaceId])).map((r) => String(r.id)));
}

/** Rebuilds the current tree of the space in `outDir`. */
export async function readSpace(o: ReadOptions): Promise<ReadResult> {
  return withStore(o, async (s) => {
    // Each file's newest version: the highest seq of its rows (storage.md §4 step 4).
    const heads = await query(s.db, 'SELECT v.* FROM versions v WHERE v.space_id = ? AND v.seq = (SELECT MAX(w.seq) FROM versions w WHERE w.file_id = v.file_id) ORDER BY v.seq', [o.spaceId]);
    const result: ReadResult = { files: 0, folders: 0, tree: new Map(), fileIds: new Map() };
    const current: { m: Manifest; fileKey: Uint8Array }[] = [];
    for (const row of heads) {
      const v = await versionOf(s, row);
      if (!v.m.deleted) current.push(v);
    }
    current.sort((a, b) => (a.m.path < b.m.path ? -1 : 1));
    for (const { m, fileKey } of current) {
      const abs = inside(o.outDir, m.path);
      result.fileIds.set(m.path, m.fileId);
      if (m.kind === 'dir') {
        await mkdir(abs, { recursive: true });
        result.tree.set(m.path, 'dir');
        result.folders++;
        continue;
      }
      const content = await contentOf(s, m, fileKey);
      await mkdir(path.dirname(abs), { recursive: true });
      await writeFile(abs, content, { flag: 'wx' });
      await utimes(abs, new Date(m.mtimeMs), new Date(m.mtimeMs));
      result.tree.set(m.path, m.hash);
      result.files++;
    }
    return result;
  });
}
