// Writes test/vectors/membership.json ONCE: a space's membership log (docs/crypto.md §4.1) with every operation,
// its entry hashes, the epoch chain (each epoch's secret sealed to the next) and a v2 manifest naming a log position
// (docs/crypto.md §8). Keys come from recorded seeds, so every signature can be recomputed byte for byte.
import { existsSync, writeFileSync } from 'node:fs';
import * as k from '@kluis/shared';

const out = new URL('../../test/vectors/membership.json', import.meta.url);
if (existsSync(out)) {
  console.error('test/vectors/membership.json exists: vectors are frozen and never regenerated');
  process.exit(1);
}
await k.initCrypto();
const b64 = k.toBase64Url;

/** An account from two recorded 32-byte seeds. */
function account(name: string, email: string) {
  const signSeed = k.hazmat.randomBytes(32);
  const encSeed = k.hazmat.randomBytes(32);
  const sign = k.hazmat.signSeedKeypair(signSeed);
  const enc = k.hazmat.boxSeedKeypair(encSeed);
  const keys: k.AccountKeys = { encPublicKey: enc.publicKey, encSecretKey: enc.privateKey, signPublicKey: sign.publicKey, signSecretKey: sign.privateKey };
  const identity: k.MemberIdentity = { userId: k.newId(), email, ...k.publicIdentity(keys), identitySig: k.signIdentity(keys, email) };
  return { name, keys, identity, record: { name, signSeed: b64(signSeed), encSecretKey: b64(enc.privateKey), identity } };
}

const an = account('an', 'an.peeters@gent.example.be');
const bram = account('bram', 'bram.claes@gent.example.be');
const chloe = account('chloe', 'chloe.dubois@gent.example.be');
const spaceId = k.newId();
const epochs = [k.generateSpaceKeyPair(), k.generateSpaceKeyPair(), k.generateSpaceKeyPair()];
const ts = 1_795_000_000_000;

const entries: k.MembershipEntry[] = [];
let state: k.MembershipState | null = null;
function append(fields: Omit<k.MembershipEntry, 'v' | 'kind' | 'signer' | 'sig'>, author: ReturnType<typeof account>): void {
  const entry = k.signMembershipEntry(fields, author.keys);
  entries.push(entry);
  state = k.verifyMembershipLog(entries, spaceId);
}
const next = (op: Exclude<k.MembershipOp, 'create'>, f: Parameters<typeof k.nextMembershipFields>[2], i: number) => k.nextMembershipFields(state!, op, f, ts + i * 60_000);

append({ spaceId, seq: 1, prev: k.MEMBERSHIP_GENESIS, op: 'create', ts, user: an.identity, role: 'manager', keyEpoch: 1, spacePublicKey: b64(epochs[0]!.publicKey) }, an);
append(next('add', { user: bram.identity, role: 'editor' }, 1), an);
append(next('add', { user: chloe.identity, role: 'viewer' }, 2), an);
append(next('role', { user: bram.identity, role: 'manager' }, 3), an);
append(next('remove', { user: chloe.identity, spacePublicKey: b64(epochs[1]!.publicKey) }, 4), bram);
append(next('rotate', { spacePublicKey: b64(epochs[2]!.publicKey) }, 5), an);

// A v2 manifest by bram, naming position 2 (when he was an editor), under a recorded file key.
const fileKey = k.generateFileKey();
const sub = k.deriveFileSubkeys(fileKey);
const manifest: k.Manifest = {
  v: 2, memberSeq: 2, fileId: k.newId(), versionId: k.newId(), parent: null, path: 'Dossiers/verslag.txt', kind: 'file', size: 0, mtimeMs: ts,
  chunks: [], hash: k.contentHash(new Uint8Array()), deleted: false,
};

writeFileSync(out, JSON.stringify({
  note: 'Membership log of one space (docs/crypto.md §4.1), the epoch chain and a v2 manifest (§8). Never regenerate.',
  spaceId,
  accounts: [an.record, bram.record, chloe.record],
  entries: entries.map((entry) => ({ entry, canonical: k.canonicalJson(entry), hash: k.membershipEntryHash(entry) })),
  head: { seq: state!.seq, hash: state!.hash, keyEpoch: state!.keyEpoch },
  epochs: epochs.map((pair, i) => ({
    keyEpoch: i + 1, publicKey: b64(pair.publicKey), secretKey: b64(pair.secretKey),
    prevSealed: i === 0 ? null : k.sealPreviousEpoch(epochs[i - 1]!, pair),
  })),
  manifestV2: { fileKey: b64(fileKey), manifest, canonical: k.canonicalJson(manifest), sealed: b64(k.sealManifest(manifest, sub, bram.keys)), signer: bram.identity.signPublicKey },
}, null, 2) + '\n');
console.log('wrote', out.pathname, entries.length, 'entries');
