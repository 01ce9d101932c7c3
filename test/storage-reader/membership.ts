// The membership log of a space (docs/crypto.md §4.1, rows of `space_log` in docs/storage.md §3.2), verified from its
// first entry by an independent reader: who was a writer or a manager at each position and during each key epoch,
// and each epoch's public key. Identity signatures (§3) are checked for every user an entry brings in.
import { b64u, blake2b256, canonical, concat, equal, hex, utf8, verifySigned } from './primitives.js';

type Role = 'viewer' | 'editor' | 'manager';
interface LogUser { userId: string; email: string; encPublicKey: string; signPublicKey: string; identitySig: string }
interface Entry {
  v: number; kind: string; spaceId: string; seq: number; prev: string; op: 'create' | 'add' | 'remove' | 'role' | 'rotate'; ts: number;
  user: LogUser | null; role: Role | null; keyEpoch: number; spacePublicKey: string | null; signer: string; sig: string;
}
const FIELDS = ['keyEpoch', 'kind', 'op', 'prev', 'role', 'seq', 'sig', 'signer', 'spaceId', 'spacePublicKey', 'ts', 'user', 'v'];

export interface VerifiedLog {
  /** members (by signPublicKey b64u) and their role after each position: positions[n] is the state after entry n */
  positions: Map<string, Role>[];
  /** each epoch's public key, as the log carries it */
  epochKeys: Map<number, Uint8Array>;
  /** per epoch, everyone who held a role while it was current */
  rolesDuringEpoch: Map<number, Map<string, Set<Role>>>;
  /** signPublicKey -> e-mail of everyone who was ever a member */
  emails: Map<string, string>;
}

function identityOk(u: LogUser): boolean {
  const body = utf8(canonical({ email: u.email, encPublicKey: u.encPublicKey, signPublicKey: u.signPublicKey }));
  return verifySigned('kluis/identity/v1', body, b64u(u.identitySig), b64u(u.signPublicKey));
}

/** Verifies the rows (`entry`, `hash`, by `seq`) and answers the positions, epochs and roles; throws at the first broken rule. */
export function verifyLog(spaceId: string, rows: { seq: number; entry: string; hash: string }[]): VerifiedLog {
  const positions: Map<string, Role>[] = [new Map()];
  const epochKeys = new Map<number, Uint8Array>();
  const rolesDuringEpoch = new Map<number, Map<string, Set<Role>>>();
  const emails = new Map<string, string>();
  const known = new Map<string, LogUser>();
  let headHash = '0'.repeat(64);
  let epoch = 0;
  const noteRoles = (members: Map<string, Role>) => {
    let during = rolesDuringEpoch.get(epoch);
    if (!during) rolesDuringEpoch.set(epoch, (during = new Map()));
    for (const [k, role] of members) {
      if (!during.has(k)) during.set(k, new Set());
      during.get(k)!.add(role);
    }
  };
  for (const row of rows) {
    const fail = (why: string): never => {
      throw new Error(`membership log entry ${row.seq}: ${why}`);
    };
    // Stored as JSON in any member order (docs/storage.md §3.2): the hash and signature are over its canonical form.
    const e = JSON.parse(row.entry) as Entry;
    const text = canonical(e);
    if (Object.keys(e).sort().join() !== FIELDS.join()) fail('wrong fields');
    if (e.v !== 1 || e.kind !== 'membership' || e.spaceId !== spaceId) fail('not an entry of this space');
    if (e.seq !== positions.length || e.prev !== headHash) fail('breaks the chain');
    const hash = hex(blake2b256(concat(utf8('kluis/membership/v1'), new Uint8Array([0]), utf8(text))));
    if (hash !== row.hash) fail('stored hash is not the entry\'s');
    const { sig, ...unsigned } = e;
    if (!verifySigned('kluis/membership/v1', utf8(canonical(unsigned)), b64u(sig), b64u(e.signer))) fail('signature does not verify');
    const before = positions[positions.length - 1]!;
    const members = new Map(before);
    if (e.seq === 1) {
      if (e.op !== 'create' || !e.user || e.signer !== e.user.signPublicKey || e.role !== 'manager' || e.keyEpoch !== 1 || !e.spacePublicKey) fail('the first entry must be a create by its user');
    } else if (e.op === 'create' || before.get(e.signer) !== 'manager') fail('not signed by a manager');
    if (e.op === 'create' || e.op === 'add') {
      if (!e.user || !e.role || !identityOk(e.user) || members.has(e.user.signPublicKey)) fail('bad new member');
      members.set(e.user!.signPublicKey, e.role!);
      known.set(e.user!.signPublicKey, e.user!);
      emails.set(e.user!.signPublicKey, e.user!.email);
    } else if (e.op === 'role' || e.op === 'remove') {
      const was = e.user && known.get(e.user.signPublicKey);
      if (!e.user || !was || !members.has(e.user.signPublicKey) || was.email !== e.user.email || was.encPublicKey !== e.user.encPublicKey) fail('not a member');
      if (e.op === 'role') members.set(e.user!.signPublicKey, e.role!);
      else members.delete(e.user!.signPublicKey);
      if (![...members.values()].includes('manager')) fail('leaves the space without a manager');
    }
    const rotates = e.op === 'create' || e.op === 'remove' || e.op === 'rotate';
    if (e.keyEpoch !== (rotates ? epoch + 1 : epoch)) fail('wrong key epoch');
    if (rotates) {
      const pk = b64u(e.spacePublicKey ?? fail('no space public key'));
      if ([...epochKeys.values()].some((k) => equal(k, pk))) fail('a space public key repeats');
      epoch = e.keyEpoch;
      epochKeys.set(epoch, pk);
    } else if (e.spacePublicKey !== null) fail('unexpected space public key');
    // The signer acted under the epoch current before the entry; the new state belongs to the epoch after it.
    noteRoles(members);
    positions.push(members);
    headHash = hash;
  }
  if (positions.length === 1) throw new Error('the space has no membership log');
  return { positions, epochKeys, rolesDuringEpoch, emails };
}

/** Whether `signer` held one of `roles` at some position while epoch `epoch` was current. */
export function heldDuringEpoch(log: VerifiedLog, epoch: number, signer: string, roles: Role[]): boolean {
  const held = log.rolesDuringEpoch.get(epoch)?.get(signer);
  return held !== undefined && roles.some((r) => held.has(r));
}

/** The manifest rule (crypto.md §8): a writer at `memberSeq` (v2), or at any position (v1). */
export function writerAt(log: VerifiedLog, signer: string, memberSeq: number | null): boolean {
  const isWriter = (p: Map<string, Role>) => ['editor', 'manager'].includes(p.get(signer) ?? '');
  if (memberSeq === null) return log.positions.some(isWriter);
  const p = log.positions[memberSeq];
  return p !== undefined && isWriter(p);
}
