// `kluis-admin backup verify DIR` (docs/backup.md §4): checks a backup completely without its secret key: the manifest's
// form and signature, that the directory holds exactly the files it lists, each file's BLAKE2b-256, size and frames,
// and that the counts agree with the frames (one record per row, one per object).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ContentHasher, sameBackupKey, verifyBackupManifest } from '@kluis/shared';
import { AUDIT_FILE, BackupManifest, MANIFEST_FILE, OBJECTS_FILE, readFrames } from './format.js';

export interface BackupCheck {
  ok: boolean;
  /** The first problem found (null when ok). */
  problem: string | null;
  manifest: BackupManifest | null;
  files: number;
  bytes: number;
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const name = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, name));
    else out.push(name);
  }
  return out;
}

/** Reads and checks the manifest of `dir` (form and signature); throws with the reason. */
export function readManifest(dir: string, trustedServerKey?: string): BackupManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'));
  } catch (err) {
    throw new Error(`${MANIFEST_FILE}: not readable JSON (${(err as Error).message})`);
  }
  const parsed = BackupManifest.safeParse(doc);
  if (!parsed.success) throw new Error(`${MANIFEST_FILE}: not a ${'kluis-backup/v1'} manifest (${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message})`);
  const m = parsed.data;
  if (trustedServerKey !== undefined && !sameBackupKey(trustedServerKey, m.serverPublicKey)) throw new Error(`signed by server key ${m.serverPublicKey}, not by the trusted ${trustedServerKey}`);
  try {
    verifyBackupManifest(m, m.serverPublicKey);
  } catch {
    throw new Error(`${MANIFEST_FILE}: the signature does not verify`);
  }
  const names = m.files.map((f) => f.name);
  if (new Set(names).size !== names.length) throw new Error(`${MANIFEST_FILE}: a file is listed twice`);
  if (names.filter((n) => n === OBJECTS_FILE).length !== 1 || names.filter((n) => n === AUDIT_FILE).length !== 1) throw new Error(`${MANIFEST_FILE}: ${OBJECTS_FILE} and ${AUDIT_FILE} must be listed once`);
  const tables = names.filter((n) => n.startsWith('tables/')).map((n) => n.slice('tables/'.length, -'.kbk'.length));
  if (tables.length !== Object.keys(m.counts.rows).length || tables.some((t) => !(t in m.counts.rows))) throw new Error(`${MANIFEST_FILE}: the row counts do not name the table files`);
  for (const f of m.files) {
    const expected = f.name === OBJECTS_FILE ? m.counts.objects : f.name === AUDIT_FILE ? null : m.counts.rows[f.name.slice('tables/'.length, -'.kbk'.length)];
    if (expected !== null && expected !== f.records) throw new Error(`${f.name}: ${f.records} records, the counts say ${expected}`);
  }
  return m;
}

/** Checks everything that can be checked without the organisation's secret key. */
export async function checkBackup(dir: string, trustedServerKey?: string): Promise<BackupCheck> {
  let manifest: BackupManifest | null = null;
  let bytes = 0;
  try {
    manifest = readManifest(dir, trustedServerKey);
    const listed = new Set([MANIFEST_FILE, ...manifest.files.map((f) => f.name)]);
    const present = listFiles(dir);
    const extra = present.filter((n) => !listed.has(n));
    if (extra.length) throw new Error(`${extra[0]}: not listed in the manifest`);
    for (const f of manifest.files) {
      const file = path.join(dir, f.name);
      let size: number;
      try {
        size = statSync(file).size;
      } catch {
        throw new Error(`${f.name}: missing`);
      }
      if (size !== f.bytes) throw new Error(`${f.name}: ${size} bytes, the manifest says ${f.bytes}`);
      const hasher = new ContentHasher();
      let frames = 0;
      for await (const frame of readFrames(file, f.name, hasher)) {
        if (frame.length < 41) throw new Error(`${f.name}: record ${frames} is shorter than an envelope`);
        frames++;
      }
      if (hasher.digest() !== f.hash) throw new Error(`${f.name}: its BLAKE2b-256 differs from the manifest's`);
      if (frames !== f.records) throw new Error(`${f.name}: ${frames} records, the manifest says ${f.records}`);
      bytes += size;
    }
    return { ok: true, problem: null, manifest, files: manifest.files.length, bytes };
  } catch (err) {
    return { ok: false, problem: (err as Error).message, manifest, files: manifest?.files.length ?? 0, bytes };
  }
}
