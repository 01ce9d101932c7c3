// The `kluis` CLI's account and space commands, driving the built binary (node desktop/dist/cli/main.js) against a
// real server, each client in its own KLUIS_HOME: sign-up and its one-time recovery key, login, the keys.json
// permissions, spaces and key rotation, fingerprints, devices, logout, and password reset with the recovery key.
import test from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { repoRoot, startServer, type RunningServer } from '../helpers/server.js';
import { admin, call, enrolTotp, enterpriseNumber } from '../helpers/api.js';

const CLI = path.join(repoRoot, 'desktop/dist/cli/main.js');
const RECOVERY_KEY = /\b(?:[A-Z2-7]{4}-){13}[A-Z2-7]{4}\b/g;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const homes: string[] = [];
function newHome(): string {
  const home = mkdtempSync(path.join(tmpdir(), 'kluis-home-'));
  homes.push(home);
  return home;
}

/** Runs the CLI with its own KLUIS_HOME; `stdin` is piped in (empty when absent). */
function kluis(home: string, args: string[], stdin = '', env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', KLUIS_HOME: home, KLUIS_KDF: 'min', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.on('error', () => undefined); // the CLI may exit without reading
    p.stdin.end(stdin);
  });
}

/** A failure: the exit code, and exactly one line "kluis: ..." on stderr. Returns that line. */
function oneLine(t: { is: (a: unknown, b: unknown, m?: string) => void; regex: (s: string, r: RegExp) => void }, r: Run, code: number): string {
  t.is(r.code, code, `exit code (stderr: ${r.stderr})`);
  t.regex(r.stderr, /^kluis: [^\n]+\n$/);
  return r.stderr.slice('kluis: '.length).trimEnd();
}

const json = (r: Run) => JSON.parse(r.stdout);
const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
const rand = () => Math.random().toString(36).slice(2, 10);

interface CliUser {
  email: string;
  password: string;
  home: string;
  recoveryKey: string;
  userId: string;
  deviceId: string;
}

let srv: RunningServer;
let orgId: string;
let adminToken: string;

async function invite(email: string): Promise<string> {
  const r = await call(srv.url, 'POST', `/api/v1/orgs/${orgId}/invites`, { token: adminToken, json: { email } });
  if (r.status !== 201) throw new Error(`invite: ${JSON.stringify(r.body)}`);
  return r.body.token;
}

/** A colleague signed up through the CLI (--json) in a fresh home. */
async function user(tag: string): Promise<CliUser> {
  const email = `${tag}-${rand()}@example.be`;
  const home = newHome();
  const password = `pw ${tag} ${rand()}`;
  const r = await kluis(home, ['--json', 'signup', '--server', srv.url, '--email', email, '--invite', await invite(email), '--password-stdin'], `${password}\n`);
  if (r.code !== 0) throw new Error(`signup ${email}: ${r.stderr}`);
  const out = json(r);
  return { email, password, home, recoveryKey: out.recoveryKey, userId: out.userId, deviceId: out.deviceId };
}

function loadKeys(home: string): k.AccountKeys {
  const f = readJson(path.join(home, 'keys.json'));
  return k.accountKeysFromSecrets({ encSecretKey: k.fromBase64Url(f.encSecretKey), signSeed: k.fromBase64Url(f.signSeed) }, f);
}

test.before(async () => {
  await k.initCrypto();
  srv = await startServer();
  const adminEmail = `admin-${rand()}@example.be`;
  const created = await admin(srv.dataDir, ['org', 'create', '--name', 'OCMW CLI', '--enterprise-number', enterpriseNumber(), '--admin-email', adminEmail]);
  orgId = created.orgId;
  const home = newHome();
  const r = await kluis(home, ['signup', '--server', srv.url, '--email', adminEmail, '--invite', created.inviteToken, '--password-stdin'], 'admin password 1\n');
  if (r.code !== 0) throw new Error(`admin signup: ${r.stderr}`);
  adminToken = readJson(path.join(home, 'session.json')).token;
  await enrolTotp(srv.url, { token: adminToken }); // invites are admin acts: 2-step verification first
});

test.after.always(async () => {
  await srv?.stop();
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

test('signup prints the recovery key once and stores it nowhere; --json gives it in a field; whoami shows the account', async (t) => {
  const email = `Anna.${rand()}@Example.be`;
  const home = newHome();
  const r = await kluis(home, ['signup', '--server', srv.url, '--email', email, '--invite', await invite(email.toLowerCase()), '--password-stdin'], 'een lang wachtwoord\n');
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  const shown = r.stdout.match(RECOVERY_KEY) ?? [];
  t.is(shown.length, 1, 'printed exactly once');
  t.notThrows(() => k.parseRecoveryKey(shown[0]!));
  for (const f of readdirSync(home)) {
    const text = readFileSync(path.join(home, f), 'utf8');
    t.false(text.includes(shown[0]!), `${f} does not hold the recovery key`);
    t.false(text.includes(shown[0]!.replace(/-/g, '')), `${f} does not hold the recovery key`);
  }
  t.deepEqual(readdirSync(home).sort(), ['keys.json', 'session.json']);
  t.is(statSync(home).mode & 0o777, 0o700);
  t.is(statSync(path.join(home, 'keys.json')).mode & 0o777, 0o600);
  t.is(statSync(path.join(home, 'session.json')).mode & 0o777, 0o600);
  const keys = readJson(path.join(home, 'keys.json'));
  t.deepEqual(Object.keys(keys).sort(), ['encPublicKey', 'encSecretKey', 'signPublicKey', 'signSeed', 'userId', 'v']);

  const who = await kluis(home, ['whoami', '--json']);
  t.is(who.code, 0, who.stderr);
  const me = json(who);
  t.is(me.email, email.toLowerCase());
  t.is(me.role, 'member');
  t.is(me.orgName, 'OCMW CLI');
  t.regex(me.fingerprint, /^([0-9a-f]{4} ){7}[0-9a-f]{4}$/);
  const human = await kluis(home, ['whoami']);
  t.regex(human.stdout, new RegExp(`email\\s+${email.toLowerCase().replace(/\./g, '\\.')}`));

  const other = await user('json');
  t.regex(other.recoveryKey, RECOVERY_KEY);
  t.notThrows(() => k.parseRecoveryKey(other.recoveryKey));
  // An unknown invite is refused by the server, in one line.
  const again = await kluis(newHome(), ['signup', '--server', srv.url, '--email', other.email, '--invite', 'A'.repeat(43), '--password-stdin'], 'een lang wachtwoord\n');
  t.regex(oneLine(t, again, 2), /not allowed/);
});

test('login on a second KLUIS_HOME opens the bundle; a wrong password exits 2 with one line; passwords are never taken from argv', async (t) => {
  const u = await user('login');
  const home2 = newHome();
  const base = ['login', '--server', srv.url, '--email', u.email];

  const wrong = await kluis(home2, [...base, '--password-stdin'], 'not the password\n');
  t.is(oneLine(t, wrong, 2), 'wrong e-mail address or password');
  t.is(wrong.stdout, '');
  t.deepEqual(readdirSync(home2), [], 'nothing saved');

  for (const args of [[...base, '--password', 'hunter2-in-argv'], [...base, '--password=hunter2-in-argv'], [...base, '--password-stdin', '--password', 'hunter2-in-argv']]) {
    const r = await kluis(home2, args, `${u.password}\n`);
    const line = oneLine(t, r, 2);
    t.regex(line, /never accepted on the command line.*--password-stdin/);
    t.false(r.stderr.includes('hunter2'), 'the secret is not echoed');
  }
  const noFlag = await kluis(home2, base, `${u.password}\n`);
  t.regex(oneLine(t, noFlag, 2), /--password-stdin/);
  const asJson = await kluis(home2, ['--json', ...base, '--password', 'x']);
  t.is(asJson.code, 2);
  t.is(json(asJson).error.code, 'usage');
  t.deepEqual(readdirSync(home2), []);

  const ok = await kluis(home2, [...base, '--password-stdin', '--json'], `${u.password}\n`);
  t.is(ok.code, 0, ok.stderr);
  t.is(json(ok).userId, u.userId);
  const k1 = readJson(path.join(u.home, 'keys.json'));
  const k2 = readJson(path.join(home2, 'keys.json'));
  t.deepEqual(k2, k1, 'the bundle opened to the same identity');
  t.not(readJson(path.join(home2, 'session.json')).deviceId, u.deviceId);
  t.is((await kluis(home2, ['whoami'])).code, 0);

  const again = await kluis(home2, [...base, '--password-stdin'], `${u.password}\n`);
  t.regex(oneLine(t, again, 2), /already logged in/);
  const unreachable = await kluis(newHome(), ['login', '--server', 'http://127.0.0.1:1', '--email', u.email, '--password-stdin'], 'x\n');
  t.regex(oneLine(t, unreachable, 1), /^cannot reach server http:\/\/127\.0\.0\.1:1/);
  const missing = await kluis(newHome(), ['whoami']);
  t.regex(oneLine(t, missing, 2), /not logged in/);
});

test('a keys.json readable by others is refused with a clear message', async (t) => {
  const u = await user('perm');
  const keys = path.join(u.home, 'keys.json');
  chmodSync(keys, 0o644);
  const r = await kluis(u.home, ['whoami']);
  t.regex(oneLine(t, r, 2), /keys\.json is readable or writable by other users \(mode 0644\).*chmod 600/);
  const j = await kluis(u.home, ['whoami', '--json']);
  t.is(json(j).error.code, 'insecure_state');
  chmodSync(keys, 0o600);
  t.is((await kluis(u.home, ['whoami'])).code, 0);
});

test('spaces: create, list, add-member, remove-member rotates the key to epoch 2 and the removed member loses the space', async (t) => {
  const [a, b, c] = await Promise.all([user('mgr'), user('stay'), user('leave')]);
  const created = await kluis(a.home, ['space', 'create', 'Dossiers', '--json']);
  t.is(created.code, 0, created.stderr);
  const space = json(created);
  t.like(space, { name: 'Dossiers', classification: 'internal', keyEpoch: 1, role: 'manager' });
  const medical = json(await kluis(a.home, ['space', 'create', 'Zorg', '--class', 'medical', '--json']));
  t.is(medical.classification, 'medical');
  t.regex(oneLine(t, await kluis(a.home, ['space', 'create', 'X', '--class', 'secret']), 2), /secret/);

  t.is((await kluis(a.home, ['space', 'add-member', 'Dossiers', b.email, '--role', 'editor'])).code, 0);
  const addC = await kluis(a.home, ['space', 'add-member', space.spaceId, c.email, '--role', 'viewer', '--json']);
  t.is(addC.code, 0, addC.stderr);
  t.like(json(addC), { spaceId: space.spaceId, userId: c.userId, role: 'viewer', keyEpoch: 1 });
  t.regex(oneLine(t, await kluis(a.home, ['space', 'add-member', 'Dossiers', b.email, '--role', 'owner']), 2), /owner/);
  // An internal space allows no one outside the organisation (docs/api.md "Policy"): an unknown address gets the same words.
  t.regex(oneLine(t, await kluis(a.home, ['space', 'add-member', 'Dossiers', `nobody-${rand()}@example.be`, '--role', 'viewer']), 2), /no colleague of your organisation has this address/);
  t.regex(oneLine(t, await kluis(b.home, ['space', 'add-member', 'Dossiers', c.email, '--role', 'viewer']), 2), /manager/);

  const listB = json(await kluis(b.home, ['space', 'list', '--json'])).spaces;
  t.like(listB.find((s: { spaceId: string }) => s.spaceId === space.spaceId), { role: 'editor', keyEpoch: 1 });
  t.regex((await kluis(b.home, ['space', 'list'])).stdout, /^NAME\s+ID\s+CLASS\s+ROLE\s+EPOCH/);

  // A second space with the same name: the name is now ambiguous, the error lists both ids.
  const twin = json(await kluis(a.home, ['space', 'create', 'Dossiers', '--json']));
  const ambiguous = oneLine(t, await kluis(a.home, ['space', 'remove-member', 'Dossiers', c.email]), 2);
  t.true(ambiguous.includes(space.spaceId) && ambiguous.includes(twin.spaceId), ambiguous);

  const removed = await kluis(a.home, ['space', 'remove-member', space.spaceId, c.email, '--json']);
  t.is(removed.code, 0, removed.stderr);
  t.like(json(removed), { keyEpoch: 2, remaining: 2, userId: c.userId });

  const after = json(await kluis(b.home, ['space', 'list', '--json'])).spaces;
  t.is(after.find((s: { spaceId: string }) => s.spaceId === space.spaceId).keyEpoch, 2);
  t.false(json(await kluis(c.home, ['space', 'list', '--json'])).spaces.some((s: { spaceId: string }) => s.spaceId === space.spaceId));
  const cToken = readJson(path.join(c.home, 'session.json')).token;
  t.is((await call(srv.url, 'GET', `/api/v1/spaces/${space.spaceId}`, { token: cToken })).status, 404);

  // The remaining member's wrap of epoch 2 is signed by the manager and opens with their own keys.
  const bToken = readJson(path.join(b.home, 'session.json')).token;
  const details = (await call(srv.url, 'GET', `/api/v1/spaces/${space.spaceId}`, { token: bToken })).body;
  const wrap2 = details.myWraps.find((w: k.SpaceKeyWrap) => w.keyEpoch === 2);
  const aSign = k.publicIdentity(loadKeys(a.home)).signPublicKey;
  const pair = k.openSpaceKeyWrap(wrap2, { spaceId: space.spaceId, keyEpoch: 2 }, loadKeys(b.home), (s) => s === aSign);
  t.is(k.toBase64Url(pair.publicKey), details.epochs.find((e: { keyEpoch: number }) => e.keyEpoch === 2).publicKey);
  t.regex(oneLine(t, await kluis(a.home, ['space', 'remove-member', space.spaceId, c.email]), 2), /not a member/);
});

test('space set-role: a signed log entry changes the role; the same role, an unknown role and the last manager are refused', async (t) => {
  const [a, b] = await Promise.all([user('roles'), user('promoted')]);
  const space = json(await kluis(a.home, ['space', 'create', 'Rollen', '--json']));
  t.is((await kluis(a.home, ['space', 'add-member', space.spaceId, b.email, '--role', 'viewer'])).code, 0);
  const promoted = await kluis(a.home, ['space', 'set-role', space.spaceId, b.email, 'manager', '--json']);
  t.is(promoted.code, 0, promoted.stderr);
  t.like(json(promoted), { spaceId: space.spaceId, userId: b.userId, role: 'manager', previous: 'viewer' });
  const human = await kluis(b.home, ['space', 'set-role', 'Rollen', a.email, 'editor']);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, /is now editor of "Rollen" \(was manager\)/, 'the promoted manager demotes the creator');
  t.regex(oneLine(t, await kluis(b.home, ['space', 'set-role', 'Rollen', a.email, 'editor']), 2), /already editor/);
  t.regex(oneLine(t, await kluis(b.home, ['space', 'set-role', 'Rollen', a.email, 'owner']), 2), /owner/);
  t.regex(oneLine(t, await kluis(a.home, ['space', 'set-role', 'Rollen', b.email, 'viewer']), 2), /manager/, 'an editor changes no roles');
  t.regex(oneLine(t, await kluis(b.home, ['space', 'set-role', 'Rollen', b.email, 'viewer']), 2), /at least one manager/);
  // The server's log says the same, verified from its first entry.
  const token = readJson(path.join(b.home, 'session.json')).token;
  const log = (await call(srv.url, 'GET', `/api/v1/spaces/${space.spaceId}`, { token })).body.log;
  const state = k.verifyMembershipLog(log, space.spaceId);
  t.deepEqual(log.map((e: k.MembershipEntry) => e.op), ['create', 'add', 'role', 'role']);
  t.is(state.members.get(a.userId)?.role, 'editor');
  t.is(state.members.get(b.userId)?.role, 'manager');
});

test('fingerprint: own and a colleague\'s from the directory are equal on both sides', async (t) => {
  const [x, y] = await Promise.all([user('fpx'), user('fpy')]);
  const [xOwn, yOwn, xOfY, yOfX] = await Promise.all([
    kluis(x.home, ['fingerprint', '--json']), kluis(y.home, ['fingerprint', '--json']),
    kluis(x.home, ['fingerprint', y.email, '--json']), kluis(y.home, ['fingerprint', x.email.toUpperCase(), '--json']),
  ]);
  for (const r of [xOwn, yOwn, xOfY, yOfX]) t.is(r.code, 0, r.stderr);
  t.is(json(xOfY).fingerprint, json(yOwn).fingerprint);
  t.is(json(yOfX).fingerprint, json(xOwn).fingerprint);
  t.not(json(xOwn).fingerprint, json(yOwn).fingerprint);
  t.is(json(xOwn).fingerprint, k.fingerprint(k.publicIdentity(loadKeys(x.home))));
  const human = await kluis(x.home, ['fingerprint', y.email]);
  t.is(human.stdout, `${y.email}  ${json(yOwn).fingerprint}\nNot pinned yet: it is pinned the first time you share with this colleague.\n`);
  t.regex(oneLine(t, await kluis(x.home, ['fingerprint', `nobody-${rand()}@example.be`]), 2), /no such colleague/);
});

test('devices: list and revoke; logout ends the session and wipes the local keys', async (t) => {
  const u = await user('dev');
  const home2 = newHome();
  t.is((await kluis(home2, ['login', '--server', srv.url, '--email', u.email, '--password-stdin'], `${u.password}\n`)).code, 0);
  const second = readJson(path.join(home2, 'session.json')).deviceId;
  const list = json(await kluis(u.home, ['devices', '--json'])).devices;
  t.deepEqual(list.map((d: { deviceId: string; status: string }) => [d.deviceId, d.status]).sort(), [[u.deviceId, 'current'], [second, 'active']].sort());
  t.regex((await kluis(u.home, ['devices'])).stdout, /^ID\s+STATUS\s+LAST SEEN\s+CLIENT\s+NAME\n/);

  t.regex(oneLine(t, await kluis(u.home, ['devices', 'revoke', u.deviceId]), 2), /this device: use kluis logout/);
  const revoked = await kluis(u.home, ['devices', 'revoke', second, '--json']);
  t.is(revoked.code, 0, revoked.stderr);
  t.deepEqual(json(revoked), { revoked: second });
  t.regex(oneLine(t, await kluis(home2, ['whoami']), 2), /signed out/);
  t.regex(oneLine(t, await kluis(u.home, ['devices', 'revoke', second]), 2), /no such active device/);
  t.deepEqual(json(await kluis(u.home, ['devices', '--json'])).devices.map((d: { deviceId: string }) => d.deviceId), [u.deviceId]);
  t.is(json(await kluis(u.home, ['devices', '--all', '--json'])).devices.length, 2);

  const token = readJson(path.join(u.home, 'session.json')).token;
  const out = await kluis(u.home, ['logout']);
  t.is(out.code, 0, out.stderr);
  t.deepEqual(readdirSync(u.home), [], 'keys.json and session.json are gone');
  t.is((await call(srv.url, 'GET', '/api/v1/me', { token })).status, 401);
  t.regex(oneLine(t, await kluis(u.home, ['logout']), 2), /not logged in/);
  // A device that was revoked elsewhere still logs out cleanly.
  const out2 = await kluis(home2, ['logout', '--json']);
  t.is(out2.code, 0, out2.stderr);
  t.like(json(out2), { loggedOut: true, server: 'already_ended' });
  t.deepEqual(readdirSync(home2), []);
});

test('recovery: the recovery key resets a forgotten password; the old one fails, the new one works, other sessions end', async (t) => {
  const u = await user('reset');
  const home2 = newHome();
  t.is((await kluis(home2, ['login', '--server', srv.url, '--email', u.email, '--password-stdin'], `${u.password}\n`)).code, 0);
  const space = json(await kluis(u.home, ['space', 'create', 'Voor herstel', '--json']));
  const identity = readJson(path.join(u.home, 'keys.json'));

  const home3 = newHome();
  const newPassword = `nieuw wachtwoord ${rand()}`;
  // As typed by a person: lower case, spaces instead of dashes.
  const typed = u.recoveryKey.toLowerCase().replace(/-/g, ' ');
  const reset = await kluis(home3, ['login', '--server', srv.url, '--email', u.email, '--recovery-key-stdin', '--json'], `${typed}\n${newPassword}\n`);
  t.is(reset.code, 0, reset.stderr);
  t.like(json(reset), { userId: u.userId, recovered: true });
  t.deepEqual(readJson(path.join(home3, 'keys.json')), identity, 'same identity keys');

  t.regex(oneLine(t, await kluis(u.home, ['whoami']), 2), /signed out/);
  t.regex(oneLine(t, await kluis(home2, ['whoami']), 2), /signed out/);
  t.is((await kluis(home3, ['whoami'])).code, 0);

  const old = await kluis(newHome(), ['login', '--server', srv.url, '--email', u.email, '--password-stdin'], `${u.password}\n`);
  t.is(oneLine(t, old, 2), 'wrong e-mail address or password');
  const home4 = newHome();
  const fresh = await kluis(home4, ['login', '--server', srv.url, '--email', u.email, '--password-stdin'], `${newPassword}\n`);
  t.is(fresh.code, 0, fresh.stderr);
  t.deepEqual(readJson(path.join(home4, 'keys.json')), identity);
  t.true(json(await kluis(home4, ['space', 'list', '--json'])).spaces.some((s: { spaceId: string }) => s.spaceId === space.spaceId));

  // The same recovery key keeps working (it was sealed again, not replaced).
  const home5 = newHome();
  const again = await kluis(home5, ['login', '--server', srv.url, '--email', u.email, '--recovery-key-stdin'], `${u.recoveryKey}\nderde wachtwoord ${rand()}\n`);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /reset with the recovery key/);
  t.false(again.stdout.includes(u.recoveryKey));
});

test('recovery: a typo is refused locally, a wrong key and missing lines are refused clearly', async (t) => {
  const [u, other] = await Promise.all([user('typo'), user('otherkey')]);
  // Change one character to another valid one: the check digits catch it. The server URL is closed: the refusal
  // comes before any request (otherwise this would be "cannot reach server", exit 1).
  const chars = u.recoveryKey.split('');
  chars[5] = chars[5] === 'A' ? 'B' : 'A';
  const typo = await kluis(newHome(), ['login', '--server', 'http://127.0.0.1:1', '--email', u.email, '--recovery-key-stdin'], `${chars.join('')}\nnieuw wachtwoord\n`);
  t.regex(oneLine(t, typo, 2), /typo/);
  const short = await kluis(newHome(), ['login', '--server', 'http://127.0.0.1:1', '--email', u.email, '--recovery-key-stdin', '--json'], `${u.recoveryKey.slice(0, -5)}\nnieuw wachtwoord\n`);
  t.is(short.code, 2);
  t.is(json(short).error.code, 'bad_recovery_key');

  const home = newHome();
  const wrongKey = await kluis(home, ['login', '--server', srv.url, '--email', u.email, '--recovery-key-stdin'], `${other.recoveryKey}\nnieuw wachtwoord\n`);
  t.regex(oneLine(t, wrongKey, 2), /does not open the account/);
  const noPassword = await kluis(home, ['login', '--server', srv.url, '--email', u.email, '--recovery-key-stdin'], `${u.recoveryKey}\n`);
  t.regex(oneLine(t, noPassword, 2), /no new password/);
  t.deepEqual(readdirSync(home), []);
  // Nothing changed: the old password still works.
  t.is((await kluis(newHome(), ['login', '--server', srv.url, '--email', u.email, '--password-stdin'], `${u.password}\n`)).code, 0);
});

test('recovery API: a challenge works once (a replay is refused); an unknown e-mail gets an answer of the same shape', async (t) => {
  const u = await user('replay');
  const recoveryKey = k.parseRecoveryKey(u.recoveryKey);
  const start = async (email: string) => call(srv.url, 'POST', '/api/v1/auth/recovery/start', { json: { email } });
  const finishBody = (s: { challenge: string; sealedByRecovery: string; encPublicKey: string; signPublicKey: string }, signer?: k.AccountKeys) => {
    const keys = k.openKeyBundleWithRecovery({ v: 1, encPublicKey: s.encPublicKey, signPublicKey: s.signPublicKey, sealedByPassword: '', sealedByRecovery: s.sealedByRecovery }, recoveryKey);
    const salt = k.newSalt();
    const { masterKey, authKey } = k.derivePasswordKeys(`replayed ${rand()}`, salt, k.KDF_MIN);
    const keyBundle = k.sealKeyBundle(keys, masterKey, recoveryKey);
    const kdf = { salt, ...k.KDF_MIN };
    const signature = k.signRecoveryReset({ email: u.email, challenge: s.challenge, kdf, authVerifier: k.authKeyVerifier(authKey), keyBundle }, signer ?? keys);
    return { email: u.email, challenge: s.challenge, kdf, authKey: k.toBase64Url(authKey), keyBundle, signature, deviceName: 'replay test' };
  };

  const s1 = await start(u.email);
  t.is(s1.status, 200);
  t.is(s1.body.encPublicKey, readJson(path.join(u.home, 'keys.json')).encPublicKey);
  t.false('sealedByPassword' in s1.body, 'never the password-sealed half');
  const body = finishBody(s1.body);
  const first = await call(srv.url, 'POST', '/api/v1/auth/recovery/finish', { json: body });
  t.is(first.status, 200, JSON.stringify(first.body));
  t.is(first.body.userId, u.userId);
  const replay = await call(srv.url, 'POST', '/api/v1/auth/recovery/finish', { json: body });
  t.is(replay.status, 401);
  t.is(replay.body.error.code, 'unauthenticated');

  // A finish signed by another key is refused, with the same answer as a spent challenge (and as an unknown
  // address, below), and spends the challenge.
  const s2 = await start(u.email);
  const forged = await call(srv.url, 'POST', '/api/v1/auth/recovery/finish', { json: finishBody(s2.body, k.generateAccountKeys()) });
  t.is(forged.status, 401);
  t.deepEqual(forged.body, replay.body);
  t.is((await call(srv.url, 'POST', '/api/v1/auth/recovery/finish', { json: finishBody(s2.body) })).status, 401);

  const nobody = `nobody-${rand()}@example.be`;
  const [f1, f2] = [await start(nobody), await start(nobody)];
  const real = await start(u.email);
  t.is(f1.status, 200);
  t.deepEqual(Object.keys(f1.body), Object.keys(real.body), 'same members in the same order');
  for (const key of Object.keys(real.body)) t.is(f1.body[key].length, real.body[key].length, key);
  t.is(k.fromBase64Url(f1.body.sealedByRecovery)[0], 1, 'looks like a version-1 envelope');
  t.is(f1.body.encPublicKey, f2.body.encPublicKey, 'stable per e-mail');
  t.is(f1.body.sealedByRecovery, f2.body.sealedByRecovery);
  t.not(f1.body.challenge, f2.body.challenge);
  const unknownFinish = await call(srv.url, 'POST', '/api/v1/auth/recovery/finish', { json: { ...body, email: nobody, challenge: f1.body.challenge } });
  t.is(unknownFinish.status, 401);
  t.is(unknownFinish.body.error.message, replay.body.error.message);

  // The organisation's audit trail has the reset, and the refused attempts attributed to the account.
  const exported = await admin(srv.dataDir, ['audit', 'export', '--org', orgId, '--format', 'json']);
  const mine = (exported.entries as { action: string; outcome: string; targetId: string | null }[]).filter((e) => e.targetId === u.userId);
  const seen = (action: string, outcome: string) => mine.filter((e) => e.action === action && e.outcome === outcome).length;
  t.is(seen('auth.recovery.start', 'success'), 3);
  t.is(seen('auth.recovery', 'success'), 1);
  t.is(seen('auth.recovery', 'failed'), 3, 'replay, forged signature, spent challenge');
});
