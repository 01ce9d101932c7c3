// Policy matrix (issue 17, docs/api.md "Policy"): every class × every sharing action, allowed or refused as documented,
// each refusal answered with its status and code and found in the organisation's audit trail naming the class. Run
// once with the documented defaults and once with an organisation whose admin changed every class through the API, so
// that each field of the policy is shown to be read, not hard-coded. The expected outcomes are written here from the
// documented rules, not computed with the server's own functions.
import test, { type ExecutionContext } from 'ava';
import * as k from '@kluis/shared';
import { startServer, type RunningServer } from '../helpers/server.js';
import { addMemberBody, call, newColleague, newOrg, newSpace, removeBody, type User } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';

let srv: RunningServer;
test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
});
test.afterEach.always((t) => {
  if (!t.passed) t.log(`server log:\n${srv.output().slice(-3000)}`);
});
test.after.always(async () => {
  await srv?.stop();
});

type Cls = k.ClassName;
type Policy = k.ClassPolicy;
const DAY = 86_400_000;

/** The table of defaults in docs/api.md "Policy", as written there. */
const DOCUMENTED: Record<Cls, Policy> = {
  public: { linksAllowed: true, maxLinkDays: 90, passwordRequired: false, maxDownloads: null, externalMembers: true },
  internal: { linksAllowed: true, maxLinkDays: 30, passwordRequired: false, maxDownloads: null, externalMembers: false },
  confidential: { linksAllowed: true, maxLinkDays: 14, passwordRequired: true, maxDownloads: 50, externalMembers: false },
  personal: { linksAllowed: true, maxLinkDays: 7, passwordRequired: true, maxDownloads: 10, externalMembers: false },
  'social-personal': { linksAllowed: true, maxLinkDays: 7, passwordRequired: true, maxDownloads: 5, externalMembers: false },
  medical: { linksAllowed: false, maxLinkDays: 1, passwordRequired: true, maxDownloads: 1, externalMembers: false },
};

/** An organisation's own policy, different from the default in every field somewhere. */
const CHANGED: Record<Cls, Policy> = {
  public: { linksAllowed: true, maxLinkDays: 5, passwordRequired: true, maxDownloads: 3, externalMembers: false },
  internal: { linksAllowed: true, maxLinkDays: 2, passwordRequired: false, maxDownloads: 4, externalMembers: true },
  confidential: { linksAllowed: false, maxLinkDays: 14, passwordRequired: true, maxDownloads: 50, externalMembers: true },
  personal: { linksAllowed: true, maxLinkDays: 7, passwordRequired: true, maxDownloads: null, externalMembers: true },
  'social-personal': { linksAllowed: true, maxLinkDays: 10, passwordRequired: false, maxDownloads: 5, externalMembers: false },
  medical: { linksAllowed: true, maxLinkDays: 1, passwordRequired: true, maxDownloads: 1, externalMembers: true },
};

interface LinkAsk {
  days: number;
  password: boolean;
  maxDownloads: number | null;
}

/** The documented link rules: links allowed, life within the longest, a password where required, downloads within the most. */
function linkAllowed(p: Policy, ask: LinkAsk): boolean {
  return p.linksAllowed && ask.days <= p.maxLinkDays && (ask.password || !p.passwordRequired)
    && (p.maxDownloads === null || (ask.maxDownloads !== null && ask.maxDownloads <= p.maxDownloads));
}

/** The link asks of the matrix, for a class's policy. */
function linkAsks(p: Policy): Record<string, LinkAsk> {
  return {
    'link without password': { days: 1, password: false, maxDownloads: 1 },
    'link with password': { days: 1, password: true, maxDownloads: 1 },
    'link longer than maxLinkDays': { days: p.maxLinkDays + 1, password: true, maxDownloads: 1 },
    'link over maxDownloads': { days: 1, password: true, maxDownloads: (p.maxDownloads ?? 9_999) + 1 },
    'link with unlimited downloads': { days: 1, password: true, maxDownloads: null },
  };
}

interface Org {
  admin: User;
  colleague: User;
  orgId: string;
}

async function upload(u: User, spaceId: string, chunks: { id: string; ciphertext: Uint8Array }[]): Promise<void> {
  const res = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames(chunks) });
  if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`);
}

/** The newest refusal in the actor's organisation's trail, as its admins read it through the API. */
async function lastRefusal(reader: User, actorId: string) {
  const res = await call(srv.url, 'GET', `/api/v1/orgs/${reader.orgId}/audit?actor=${actorId}&outcome=denied&order=desc&limit=1`, { token: reader.token });
  if (res.status !== 200) throw new Error(`audit: ${JSON.stringify(res.body)}`);
  return res.body.entries[0] as { seq: number; action: string; outcome: string; targetId: string | null; details: Record<string, unknown> } | undefined;
}

/**
 * Runs every sharing action on a fresh space of each class in `org`, whose policy in effect is `table`; `external` is a
 * person of another organisation. Returns the number of refusals seen.
 */
async function matrix(t: ExecutionContext, org: Org, table: Record<Cls, Policy>, external: User): Promise<number> {
  const { admin } = org;
  let refusals = 0;
  let lastSeq = 0;
  /** Checks one answer: allowed (the given success status) or refused with status, code and an audit entry naming the class. */
  const expect = async (label: string, res: { status: number; body: any }, allowed: boolean, ok: number, refusal: { status: number; code: string; action: string; rule: string; cls: Cls }) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    if (allowed) {
      t.is(res.status, ok, `${label}: ${JSON.stringify(res.body)}`);
      return;
    }
    refusals++;
    t.is(res.status, refusal.status, `${label}: ${JSON.stringify(res.body)}`);
    t.is(res.body?.error?.code, refusal.code, label);
    t.regex(res.body?.error?.message ?? '', new RegExp(refusal.cls), `${label}: the message names the class`);
    const entry = await lastRefusal(admin, admin.userId);
    t.truthy(entry, `${label}: audited`);
    t.true(entry!.seq > lastSeq, `${label}: a new audit entry`);
    lastSeq = entry!.seq;
    t.like(entry!, { action: refusal.action, outcome: 'denied' }, label);
    t.like(entry!.details, { status: refusal.status, code: refusal.code, rule: refusal.rule }, label);
    t.true(entry!.details.classification === refusal.cls || entry!.details.from === refusal.cls, `${label}: the entry names the class`);
  };

  for (const [i, cls] of k.CLASS_ORDER.entries()) {
    const p = table[cls];
    const { spaceId, pair } = await newSpace(srv.url, admin, `Matrix ${cls}`, cls);
    const f = newFile();
    const chunk = k.encryptChunk(f.sub, new Uint8Array([i]));
    await upload(admin, spaceId, [chunk]);
    const v = version(admin, spaceId, pair, 1, f, { parent: null, memberSeq: 1, chunks: [[chunk.id, 1]], hash: k.contentHash(new Uint8Array([i])) });
    t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: admin.token, json: { versions: [v.entry] } })).status, 201);

    // Links.
    const made: { linkId: string; ask: LinkAsk }[] = [];
    for (const [name, ask] of Object.entries(linkAsks(p))) {
      const now = Date.now();
      const linkId = k.newId();
      const res = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/links`, { token: admin.token, json: {
        linkId, fileId: f.fileId, versionId: v.versionId, kdf: ask.password ? { salt: k.newSalt(), opsLimit: 2, memLimit: 67_108_864 } : null,
        authHash: 'ab'.repeat(32), wrapped: k.toBase64Url(k.hazmat.randomBytes(73)), expiresAt: now + ask.days * DAY - 60_000, maxDownloads: ask.maxDownloads, purpose: 'Beleidsmatrix',
      } });
      if (ask.days > k.LINK_MAX_DAYS) {
        // Beyond the server's own bound (90 days) for every class: a bad request, not a policy question.
        t.is(res.status, 400, `${cls} / ${name}`);
        continue;
      }
      const allowed = linkAllowed(p, ask);
      await expect(`${cls} / ${name}`, res, allowed, 201, { status: 403, code: 'policy_refused', action: 'link.create', rule: 'link', cls });
      if (allowed) made.push({ linkId, ask });
    }

    // Direct shares: a colleague of the organisation always; a person of another organisation as the class says.
    const shareTo = (u: User) => call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/files/${f.fileId}/shares`, { token: admin.token, json: {
      recipientUserId: u.userId, wraps: [k.wrapFileKey(f.fileKey, { spaceId, keyEpoch: 1, fileId: f.fileId, recipient: u.identity.encPublicKey }, admin.keys)],
    } });
    await expect(`${cls} / share file to a colleague`, await shareTo(org.colleague), true, 201, { status: 403, code: 'policy_refused', action: 'share.create', rule: 'external-share', cls });
    const extShare = await shareTo(external);
    await expect(`${cls} / share file to an external person`, extShare, p.externalMembers, 201, { status: 403, code: 'policy_refused', action: 'share.create', rule: 'external-share', cls });

    // The external person's key, by exact address in the space's context only.
    const lookup = await call(srv.url, 'GET', `/api/v1/directory?email=${encodeURIComponent(external.email)}&space=${spaceId}`, { token: admin.token });
    await expect(`${cls} / look up an external person`, lookup, p.externalMembers, 200, { status: 403, code: 'policy_refused', action: 'directory.read', rule: 'external-member', cls });
    if (p.externalMembers) t.like(lookup.body, { userId: external.userId, org: { orgId: external.orgId } });

    // Members.
    const add = async (u: User, role: string) => call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: admin.token, json: await addMemberBody(srv.url, admin, spaceId, pair, u, role) });
    await expect(`${cls} / add an internal member`, await add(org.colleague, 'editor'), true, 201, { status: 403, code: 'policy_refused', action: 'space.member.add', rule: 'external-member', cls });
    await expect(`${cls} / add an external member`, await add(external, 'viewer'), p.externalMembers, 201, { status: 403, code: 'policy_refused', action: 'space.member.add', rule: 'external-member', cls });

    // Lowering: always refused.
    const patch = (classification: string) => call(srv.url, 'PATCH', `/api/v1/spaces/${spaceId}`, { token: admin.token, json: { classification } });
    if (i > 0) await expect(`${cls} / lower the class`, await patch(k.CLASS_ORDER[i - 1]!), false, 200, { status: 409, code: 'conflict', action: 'space.class.change', rule: 'lower', cls });

    // Raising: refused while the space shares what the next class forbids, with each blocker named; allowed once they end.
    const next = k.CLASS_ORDER[i + 1];
    if (!next) continue;
    const q = table[next];
    const blockers = [
      ...(p.externalMembers && !q.externalMembers ? [{ kind: 'member', id: external.userId }, { kind: 'share', id: extShare.body.shareId as string }] : []),
      ...made.filter((l) => !linkAllowed(q, l.ask)).map((l) => ({ kind: 'link', id: l.linkId })),
    ];
    const raised = await patch(next);
    await expect(`${cls} / raise to ${next}`, raised, blockers.length === 0, 200, { status: 409, code: 'policy_refused', action: 'space.class.change', rule: 'raise', cls: next });
    if (blockers.length === 0) continue;
    t.deepEqual(raised.body.blocking.map((b: k.RaiseBlocker) => `${b.kind} ${b.id}`).sort(), blockers.map((b) => `${b.kind} ${b.id}`).sort(), `${cls} → ${next}: the blockers`);
    for (const b of blockers) {
      if (b.kind === 'link') t.is((await call(srv.url, 'DELETE', `/api/v1/links/${b.id}`, { token: admin.token })).status, 204);
      if (b.kind === 'share') t.is((await call(srv.url, 'DELETE', `/api/v1/shares/${b.id}`, { token: admin.token })).status, 204);
      if (b.kind === 'member') {
        const { body } = await removeBody(srv.url, admin, spaceId, pair, external, [admin, org.colleague]);
        t.is((await call(srv.url, 'DELETE', `/api/v1/spaces/${spaceId}/members/${external.userId}`, { token: admin.token, json: body })).status, 204);
      }
    }
    t.is((await patch(next)).status, 200, `${cls} → ${next} once the blockers ended`);
  }
  return refusals;
}

async function organisation(name: string): Promise<Org> {
  const { admin, orgId } = await newOrg(srv.url, srv.dataDir, name);
  return { admin, orgId, colleague: await newColleague(srv.url, admin) };
}

test('policy matrix: the documented defaults, every class × every sharing action', async (t) => {
  t.deepEqual(k.DEFAULT_CLASS_POLICY, DOCUMENTED, 'the defaults are the documented ones');
  const org = await organisation('OCMW Matrix');
  const { admin: external } = await newOrg(srv.url, srv.dataDir, 'Gemeente Buiten');
  const refusals = await matrix(t, org, DOCUMENTED, external);
  // medical: 4 link kinds + the external share, look-up and member, lowering; public: the over-bound link is a 400.
  t.true(refusals >= 30, `refusals: ${refusals}`);
});

test('policy matrix: an organisation\'s own policy, set by its admin through the API, is the one enforced', async (t) => {
  const org = await organisation('OCMW Eigen Beleid');
  const { admin: external } = await newOrg(srv.url, srv.dataDir, 'Intercommunale Buiten');
  for (const cls of k.CLASS_ORDER) {
    const res = await call(srv.url, 'PUT', `/api/v1/orgs/${org.orgId}/policy/${cls}`, { token: org.admin.token, json: CHANGED[cls] });
    t.is(res.status, 200, JSON.stringify(res.body));
  }
  const refusals = await matrix(t, org, CHANGED, external);
  t.true(refusals >= 20, `refusals: ${refusals}`);
});

test('cross-organisation acts: each organisation\'s auditors see their own side, and nothing else of the other', async (t) => {
  const a = await organisation('OCMW Eigenaar');
  const b = await organisation('Gemeente Partner');
  const ext = b.colleague;
  const { spaceId, pair } = await newSpace(srv.url, a.admin, 'Samenwerking', 'public');
  // Not found without the space's context, nor by id before they share anything.
  t.is((await call(srv.url, 'GET', `/api/v1/directory?email=${encodeURIComponent(ext.email)}`, { token: a.admin.token })).status, 404);
  t.is((await call(srv.url, 'GET', `/api/v1/directory?userId=${ext.userId}`, { token: a.admin.token })).status, 404);
  t.is((await call(srv.url, 'GET', `/api/v1/directory?email=nobody-${k.newId().slice(0, 6).toLowerCase()}@example.be&space=${spaceId}`, { token: a.admin.token })).status, 404);
  t.is((await call(srv.url, 'GET', `/api/v1/directory?email=${encodeURIComponent(ext.email)}&space=${spaceId}`, { token: a.colleague.token })).status, 404, 'not a member of the space');
  t.is((await call(srv.url, 'GET', `/api/v1/directory?userId=${ext.userId}&space=${spaceId}`, { token: a.admin.token })).status, 400, 'space goes with an address');
  // Bad input: a space id that cannot exist (also a NUL, which PostgreSQL cannot compare) and an address that is none.
  for (const bad of ['not-an-id', '%00', 'x'.repeat(300)]) {
    t.is((await call(srv.url, 'GET', `/api/v1/directory?email=${encodeURIComponent(ext.email)}&space=${bad}`, { token: a.admin.token })).status, 404, `space=${bad.slice(0, 12)}`);
  }
  t.is((await call(srv.url, 'GET', `/api/v1/directory?email=geen-adres&space=${spaceId}`, { token: a.admin.token })).status, 400);
  const added = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/members`, { token: a.admin.token, json: await addMemberBody(srv.url, a.admin, spaceId, pair, ext, 'editor') });
  t.is(added.status, 201, JSON.stringify(added.body));
  t.is((await call(srv.url, 'GET', `/api/v1/directory?userId=${ext.userId}`, { token: a.admin.token })).status, 200, 'by id once they share a space');
  t.is((await call(srv.url, 'GET', `/api/v1/directory?userId=${a.admin.userId}`, { token: ext.token })).body.org.orgId, a.orgId, 'and the other way, naming the organisation');

  // The external member works in the space: it is listed, they write, the owner reads what they wrote (A's storage).
  t.true((await call(srv.url, 'GET', '/api/v1/spaces', { token: ext.token })).body.spaces.some((s: { spaceId: string }) => s.spaceId === spaceId));
  const f = newFile();
  const plain = new TextEncoder().encode('verslag van de partner');
  const chunk = k.encryptChunk(f.sub, plain);
  const id = chunk.id;
  await upload(ext, spaceId, [chunk]);
  const v = version(ext, spaceId, pair, 1, f, { parent: null, memberSeq: 2, chunks: [[id, plain.length]], hash: k.contentHash(plain) });
  t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: ext.token, json: { versions: [v.entry] } })).status, 201);
  const got = await fetch(`${srv.url}/api/v1/spaces/${spaceId}/chunks/download`, { method: 'POST', headers: { authorization: `Bearer ${a.admin.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ ids: [id] }) });
  t.is(got.status, 200);
  t.deepEqual(Buffer.from(k.decryptChunk(f.sub, id, k.decodeFrames(new Uint8Array(await got.arrayBuffer()))[0]!.ciphertext)), Buffer.from(plain));

  const trail = async (reader: User, action: string) => {
    const res = await call(srv.url, 'GET', `/api/v1/orgs/${reader.orgId}/audit?action=${action}&target=${spaceId}`, { token: reader.token });
    t.is(res.status, 200);
    return res.body.entries as { seq: number; orgId: string; actorUserId: string; details: Record<string, unknown> }[];
  };
  // The addition: A's original, B's copy naming the member's side.
  const [addA] = await trail(a.admin, 'space.member.add');
  const [addB] = await trail(b.admin, 'space.member.add');
  t.like(addA, { orgId: a.orgId, actorUserId: a.admin.userId, details: { userId: ext.userId, memberOrgId: b.orgId, classification: 'public' } });
  t.like(addB, { orgId: b.orgId, actorUserId: a.admin.userId, details: { userId: ext.userId, side: 'member', mirrorOf: addA!.seq, actorOrgId: a.orgId } });
  // The commit by B's person: B's original, A's copy naming the space's side.
  const [commitB] = await trail(b.admin, 'commit.create');
  const [commitA] = await trail(a.admin, 'commit.create');
  t.like(commitB, { orgId: b.orgId, actorUserId: ext.userId });
  t.like(commitA, { orgId: a.orgId, actorUserId: ext.userId, details: { side: 'space', mirrorOf: commitB!.seq, actorOrgId: b.orgId } });
  // A read by B's person, audited in a batch with concurrent reads (server/src/audit/batch.ts): the same two sides.
  const reads = await Promise.all([ext, a.admin, ext].map((u) => call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes`, { token: u.token })));
  t.deepEqual(reads.map((r) => r.status), [200, 200, 200]);
  const readsB = await trail(b.admin, 'changes.read');
  const readsA = (await trail(a.admin, 'changes.read')).filter((e) => e.actorUserId === ext.userId);
  t.is(readsB.length, 2);
  t.deepEqual(readsA.map((e) => e.details.mirrorOf).sort(), readsB.map((e) => e.seq).sort(), 'each read of B\'s person has its copy in A\'s trail');
  t.true(readsA.every((e) => e.orgId === a.orgId && e.details.side === 'space' && e.details.actorOrgId === b.orgId));
  // A link made by B's person follows A's policy and belongs to A: A's managers list it, A's trail has a copy.
  const linkId = k.newId();
  const made = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/links`, { token: ext.token, json: {
    linkId, fileId: f.fileId, versionId: v.versionId, kdf: null, authHash: 'cd'.repeat(32), wrapped: k.toBase64Url(k.hazmat.randomBytes(73)),
    expiresAt: Date.now() + DAY, maxDownloads: null, purpose: 'Samenwerking',
  } });
  t.is(made.status, 201, JSON.stringify(made.body));
  t.true((await call(srv.url, 'GET', '/api/v1/links', { token: a.admin.token })).body.links.some((l: { linkId: string }) => l.linkId === linkId));
  const linkTrail = (await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit?action=link.create&target=${linkId}`, { token: a.admin.token })).body.entries;
  t.like(linkTrail[0], { orgId: a.orgId, actorUserId: ext.userId, details: { side: 'space', actorOrgId: b.orgId } });

  // A's owner's own downloads stay A's: B's auditors do not see them.
  t.is((await trail(a.admin, 'chunks.download')).length, 1);
  t.is((await trail(b.admin, 'chunks.download')).length, 0);

  // A file shared from A to B's admin (who is no member): the recipient's organisation sees it too.
  const shared = await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/files/${f.fileId}/shares`, { token: a.admin.token, json: {
    recipientUserId: b.admin.userId, wraps: [k.wrapFileKey(f.fileKey, { spaceId, keyEpoch: 1, fileId: f.fileId, recipient: b.admin.identity.encPublicKey }, a.admin.keys)],
  } });
  t.is(shared.status, 201, JSON.stringify(shared.body));
  const shareTrail = async (reader: User) => (await call(srv.url, 'GET', `/api/v1/orgs/${reader.orgId}/audit?action=share.create&target=${shared.body.shareId}`, { token: reader.token })).body.entries;
  t.like((await shareTrail(a.admin))[0], { orgId: a.orgId, details: { recipientOrgId: b.orgId } });
  t.like((await shareTrail(b.admin))[0], { orgId: b.orgId, details: { side: 'recipient', actorOrgId: a.orgId } });
  const inbox = await call(srv.url, 'GET', '/api/v1/shared', { token: b.admin.token });
  t.deepEqual(inbox.body.shares.map((s: { shareId: string }) => s.shareId), [shared.body.shareId], 'the external recipient lists it');
  const readShared = await fetch(`${srv.url}/api/v1/shared/${shared.body.shareId}/chunks/download`, { method: 'POST', headers: { authorization: `Bearer ${b.admin.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ ids: [id] }) });
  t.is(readShared.status, 200);
  const chunksA = (await call(srv.url, 'GET', `/api/v1/orgs/${a.orgId}/audit?action=shared.chunks&target=${shared.body.shareId}`, { token: a.admin.token })).body.entries;
  t.like(chunksA[0], { orgId: a.orgId, actorUserId: b.admin.userId, details: { side: 'space' } }, 'the owner sees the external reads of its file');
});
