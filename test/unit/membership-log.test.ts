// The membership log (docs/crypto.md §4.1): the frozen vectors recompute byte for byte, and every way a server (or a
// member who is not a manager) could forge, reorder, roll back or rewrite the log is refused.
import test, { type ExecutionContext } from 'ava';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('membership.json');
const d = k.fromBase64Url;
const entries = (): k.MembershipEntry[] => V.entries.map((x: { entry: k.MembershipEntry }) => structuredClone(x.entry));
const keysOf = (name: string): k.AccountKeys => {
  const a = V.accounts.find((x: { name: string }) => x.name === name);
  const sign = k.hazmat.signSeedKeypair(d(a.signSeed));
  return { encSecretKey: d(a.encSecretKey), encPublicKey: d(a.identity.encPublicKey), signPublicKey: sign.publicKey, signSecretKey: sign.privateKey };
};
const identityOf = (name: string): k.MemberIdentity => V.accounts.find((x: { name: string }) => x.name === name).identity;
const pairOf = (epoch: number): k.SpaceKeyPair => {
  const e = V.epochs[epoch - 1];
  return { publicKey: d(e.publicKey), secretKey: d(e.secretKey) };
};
/** Re-signs a changed entry as `name` (what a member, or a server holding a member's key, could do). */
const resign = (e: k.MembershipEntry, name: string): k.MembershipEntry => {
  const { sig: _sig, signer: _signer, v: _v, kind: _kind, ...fields } = e;
  return k.signMembershipEntry(fields, keysOf(name));
};
function refuses(t: ExecutionContext, log: unknown[], code: k.ErrorCode, what: string, anchor?: k.MembershipAnchor) {
  const err = t.throws(() => k.verifyMembershipLog(log, V.spaceId, anchor), undefined, what);
  t.is((err as k.KluisError | undefined)?.code, code, `${what}: ${err?.message}`);
}

test.before(async () => {
  await k.initCrypto();
});

test('vectors: canonical text, signatures and hashes recompute; the log verifies to the recorded head', (t) => {
  const an = keysOf('an');
  t.is(k.toBase64Url(an.signPublicKey), identityOf('an').signPublicKey);
  let prev = k.MEMBERSHIP_GENESIS;
  for (const [i, x] of V.entries.entries()) {
    t.is(k.canonicalJson(x.entry), x.canonical);
    t.is(k.membershipEntryHash(x.entry), x.hash);
    t.is(x.entry.prev, prev);
    prev = x.hash;
    // Ed25519 is deterministic: the recorded keys sign the same bytes to the same signature.
    const author = V.accounts.find((a: { identity: k.MemberIdentity }) => a.identity.signPublicKey === x.entry.signer).name;
    t.deepEqual(resign(x.entry, author), x.entry, `entry ${i + 1}`);
  }
  const state = k.verifyMembershipLog(entries(), V.spaceId);
  t.deepEqual({ seq: state.seq, hash: state.hash, keyEpoch: state.keyEpoch }, V.head);
  t.deepEqual([...state.members.values()].map((m) => [m.identity.email, m.role]).sort(), [[identityOf('an').email, 'manager'], [identityOf('bram').email, 'manager']]);
  t.deepEqual([...state.epochs.entries()], V.epochs.map((e: { keyEpoch: number; publicKey: string }) => [e.keyEpoch, e.publicKey]));
});

test('roles at positions: a version is judged by the writers at the position it names', (t) => {
  const state = k.verifyMembershipLog(entries(), V.spaceId);
  const [an, bram, chloe] = ['an', 'bram', 'chloe'].map((n) => identityOf(n).signPublicKey);
  t.true(state.writerAt(an!, 1));
  t.false(state.writerAt(bram!, 1), 'bram was added at 2');
  t.true(state.writerAt(bram!, 2));
  t.false(state.writerAt(chloe!, 3), 'a viewer never writes');
  t.false(state.writerAt(chloe!, 5), 'removed at 5');
  t.false(state.writerAt(an!, 7), 'a position beyond the verified head');
  t.true(state.everWriter(bram!));
  t.false(state.everWriter(chloe!));
  t.true(state.heldRoleDuringEpoch(an!, 1, ['manager']));
  t.true(state.heldRoleDuringEpoch(bram!, 1, ['manager']), 'bram became a manager at 4, while epoch 1 was current');
  t.false(state.heldRoleDuringEpoch(chloe!, 1, ['manager', 'editor']), 'a viewer never grants or wraps');
  t.false(state.heldRoleDuringEpoch(bram!, 4, ['manager']), 'an epoch that does not exist');
  t.true(state.heldRoleDuringEpoch(bram!, 2, ['manager']));
  t.is(state.everMembers().get(chloe!), identityOf('chloe').email, 'a departed member is still named');
});

test('the epoch chain: the newest epoch opens every earlier one, checked against the log', (t) => {
  const state = k.verifyMembershipLog(entries(), V.spaceId);
  let pair = pairOf(3);
  for (let epoch = 3; epoch > 1; epoch--) {
    const prev = k.openPreviousEpoch(V.epochs[epoch - 1].prevSealed, pair, state.epochs.get(epoch - 1)!);
    t.deepEqual(prev.secretKey, pairOf(epoch - 1).secretKey);
    pair = prev;
  }
  // A sealed key that is not the log's epoch key is refused.
  const bogus = k.sealPreviousEpoch(k.generateSpaceKeyPair(), pairOf(3));
  t.throws(() => k.openPreviousEpoch(bogus, pairOf(3), state.epochs.get(2)!), { message: /does not match the membership log/ });
  t.throws(() => k.openPreviousEpoch(V.epochs[2].prevSealed, pairOf(2), state.epochs.get(2)!), { message: /does not open/ });
});

test('a v2 manifest names its position: opened, and judged there', (t) => {
  const m = V.manifestV2;
  const sub = k.deriveFileSubkeys(d(m.fileKey));
  const state = k.verifyMembershipLog(entries(), V.spaceId);
  const seen: (number | null)[] = [];
  const policy = (signer: string, seq: number | null) => {
    seen.push(seq);
    return seq !== null && state.writerAt(signer, seq);
  };
  const opened = k.openManifest(d(m.sealed), sub, { fileId: m.manifest.fileId, versionId: m.manifest.versionId }, policy);
  t.deepEqual(opened.manifest, m.manifest);
  t.is(k.canonicalJson(opened.manifest), m.canonical);
  t.is(opened.signer, m.signer);
  t.deepEqual(seen, [2]);
  const beforeBram = (signer: string, seq: number | null) => seq !== null && state.writerAt(signer, seq - 1);
  t.throws(() => k.openManifest(d(m.sealed), sub, { fileId: m.manifest.fileId, versionId: m.manifest.versionId }, beforeBram), { message: /may not write/ });
  t.throws(() => k.assertManifest({ ...m.manifest, memberSeq: 0 }), { message: /memberSeq/ });
  t.throws(() => k.assertManifest({ ...m.manifest, v: 1 }), { message: /unexpected fields/ }, 'v1 has no memberSeq');
  const { path: _path, ...noPath } = m.manifest as Record<string, unknown>;
  t.throws(() => k.assertManifest({ ...noPath, name: 'a.txt' }), { message: /unexpected fields \(chunks,.*,name,/ }, 'one field for another');
  t.throws(() => k.assertManifest({ ...m.manifest, extra: 1 }), { message: /unexpected fields/ }, 'one field more');
  t.throws(() => k.assertManifest(Object.defineProperty({ ...noPath, name: 1 }, 'path', { value: 'a.txt', enumerable: false })), { message: /unexpected fields/ }, 'a hidden field');
});

test('forged, reordered, dropped and foreign entries are refused', (t) => {
  const log = entries();
  refuses(t, [log[0], log[2], log[1]], 'bad_membership', 'reordered');
  refuses(t, [log[0], log[1], log[3]], 'bad_membership', 'an entry dropped from the middle');
  refuses(t, log.slice(1), 'bad_membership', 'no create entry');
  refuses(t, [], 'bad_membership', 'empty');
  const forgedSig = log.map((e, i) => (i === 2 ? { ...e, sig: k.toBase64Url(new Uint8Array(64)) } : e));
  refuses(t, forgedSig, 'bad_signature', 'a forged signature');
  const changed = log.map((e, i) => (i === 1 ? { ...e, role: 'manager' as const } : e));
  refuses(t, changed, 'bad_signature', 'a changed field under the old signature');
  // Re-signed by its manager after a change, the entry verifies, but the next one no longer extends the chain.
  const rewritten = log.map((e, i) => (i === 1 ? resign({ ...e, role: 'manager' }, 'an') : e));
  refuses(t, rewritten, 'bad_membership', 'a rewritten entry breaks the chain after it');
  const foreign = log.map((e) => resign({ ...e, spaceId: k.newId() }, 'an'));
  refuses(t, foreign, 'bad_membership', 'another space\'s log');
  const unknownField = [{ ...log[0], extra: 1 }];
  refuses(t, unknownField, 'bad_membership', 'an unknown field');
});

test('entries by someone who was not a manager at that position are refused', (t) => {
  const log = entries().slice(0, 3); // an manager; bram editor; chloe viewer
  const state = k.verifyMembershipLog(log, V.spaceId);
  const byEditor = k.signMembershipEntry(k.nextMembershipFields(state, 'role', { user: identityOf('bram'), role: 'manager' }), keysOf('bram'));
  refuses(t, [...log, byEditor], 'untrusted_signer', 'an editor promotes himself');
  const byViewer = k.signMembershipEntry(k.nextMembershipFields(state, 'remove', { user: identityOf('an'), spacePublicKey: k.toBase64Url(k.generateSpaceKeyPair().publicKey) }), keysOf('chloe'));
  refuses(t, [...log, byViewer], 'untrusted_signer', 'a viewer removes the manager');
  const outsider = k.generateAccountKeys();
  const byOutsider = k.signMembershipEntry(k.nextMembershipFields(state, 'rotate', { spacePublicKey: k.toBase64Url(k.generateSpaceKeyPair().publicKey) }), outsider);
  refuses(t, [...log, byOutsider], 'untrusted_signer', 'a key the log never named (e.g. the server\'s)');
  // The first entry must be signed by the creator it names.
  const first = log[0]!;
  refuses(t, [resign({ ...first, user: identityOf('bram') }, 'an')], 'bad_membership', 'create signed by someone else');
});

test('rules of each operation: the last manager stays, epochs advance by one, identities verify, no double adds', (t) => {
  const log = entries().slice(0, 3);
  const state = k.verifyMembershipLog(log, V.spaceId);
  const an = keysOf('an');
  const newKey = () => k.toBase64Url(k.generateSpaceKeyPair().publicKey);
  const cases: [string, k.MembershipEntry][] = [
    ['the last manager removes himself', k.signMembershipEntry(k.nextMembershipFields(state, 'remove', { user: identityOf('an'), spacePublicKey: newKey() }), an)],
    ['the last manager demotes himself', k.signMembershipEntry(k.nextMembershipFields(state, 'role', { user: identityOf('an'), role: 'editor' }), an)],
    ['a member added twice', k.signMembershipEntry(k.nextMembershipFields(state, 'add', { user: identityOf('bram'), role: 'viewer' }), an)],
    ['a role that does not change', k.signMembershipEntry(k.nextMembershipFields(state, 'role', { user: identityOf('bram'), role: 'editor' }), an)],
    ['a removal without a new epoch', k.signMembershipEntry({ ...k.nextMembershipFields(state, 'remove', { user: identityOf('chloe'), spacePublicKey: newKey() }), keyEpoch: 1 }, an)],
    ['an epoch that skips one', k.signMembershipEntry({ ...k.nextMembershipFields(state, 'rotate', { spacePublicKey: newKey() }), keyEpoch: 3 }, an)],
    ['an epoch key used before', k.signMembershipEntry(k.nextMembershipFields(state, 'rotate', { spacePublicKey: V.epochs[0].publicKey }), an)],
    ['a member named with other keys than when added', k.signMembershipEntry(k.nextMembershipFields(state, 'remove', { user: { ...identityOf('chloe'), signPublicKey: identityOf('an').signPublicKey }, spacePublicKey: newKey() }), an)],
    ['an identity that does not verify', k.signMembershipEntry(k.nextMembershipFields(state, 'add', { user: { ...identityOf('chloe'), userId: k.newId(), email: 'iemand@gent.example.be' }, role: 'viewer' }), an)],
  ];
  for (const [what, entry] of cases) refuses(t, [...log, entry], 'bad_membership', what);
  t.throws(() => k.signMembershipEntry({ ...k.nextMembershipFields(state, 'add', { user: identityOf('chloe') }) }, an), { message: /carries role/ }, 'add without a role cannot even be signed');
});

test('a log shorter than, or different at, the position seen before is refused as rolled back or rewritten', (t) => {
  const log = entries();
  const seen: k.MembershipAnchor = { seq: 5, hash: V.entries[4].hash };
  t.is(k.verifyMembershipLog(log, V.spaceId, seen).seq, 6, 'a longer log that still holds the anchor');
  t.is(k.verifyMembershipLog(log.slice(0, 5), V.spaceId, seen).seq, 5, 'the same length');
  refuses(t, log.slice(0, 4), 'membership_rollback', 'rolled back to 4', seen);
  // The server rewrites from entry 5 on (it would need a manager's key): the anchor catches it.
  const state = k.verifyMembershipLog(log.slice(0, 4), V.spaceId);
  const other = k.signMembershipEntry(k.nextMembershipFields(state, 'rotate', { spacePublicKey: k.toBase64Url(k.generateSpaceKeyPair().publicKey) }, V.entries[4].entry.ts), keysOf('an'));
  refuses(t, [...log.slice(0, 4), other], 'membership_rollback', 'rewritten at the anchor', seen);
});
