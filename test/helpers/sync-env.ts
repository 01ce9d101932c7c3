// End-to-end sync harness: one server per test file (blob store on a real S3 — Ceph RGW from ./s3.ts — or the
// embedded fs store), CLI accounts each with its own KLUIS_HOME, and per test a fresh space with one folder per
// member. Everything is driven through the built CLI (node desktop/dist/cli/kluis.mjs, the bundle `npm run build`
// makes with scripts/build-cli.mjs) as a user or script would, following the sync contract
// (`kluis sync DIR --space S --once --json`, `status`, `versions`, `restore`).
//
//   const env = await startSyncEnv({ accounts: ['A', 'B'] });       // test.before
//   const { clients: [a, b] } = await env.newSpace();                // per test: new space + folders
//   write(a.dir, 'x.txt', 'hello'); await syncOnce(a); await converge([a, b]);
//   await env.close();                                               // test.after.always
//
// Every CLI process is killed (SIGKILL) when the test process exits; `--once` runs have a hard timeout so a hung
// engine fails a test instead of the whole run.
//
// With `{ haproxy: true }` (PostgreSQL only) there are two server nodes on one database and one object store behind
// HAProxy (./haproxy.ts, the configuration of docs/operations.md), and the clients talk only to HAProxy, over TLS.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as k from '@kluis/shared';
import { repoRoot, startSecondNode, startServer, type RunningServer } from './server.js';
import { startLocalS3, type LocalS3 } from './s3.js';
import { freePort, startHaproxy, type Haproxy } from './haproxy.js';
import { admin, call, enrolTotp, enterpriseNumber, type User } from './api.js';
import { detBytes } from './det-bytes.js';
import { newFile, version } from './files.js';

// KLUIS_SYNC_CLI: another build of the CLI bundle for the tests and benchmarks to run (an A/B of two builds).
export const CLI = process.env.KLUIS_SYNC_CLI ?? path.join(repoRoot, 'desktop/dist/cli/kluis.mjs');
/** Prefix of the engine's temp files (contract: `.kluis-tmp-*` beside the target). */
export const TEMP_PREFIX = '.kluis-tmp-';

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** true when the harness killed it for running longer than its timeout */
  timedOut: boolean;
}

export interface RunOptions {
  stdin?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** hard limit; the process is SIGKILLed after it (default 120 s) */
  timeoutMs?: number;
}

/** Environment every CLI process of this test process gets (e.g. NODE_EXTRA_CA_CERTS behind HAProxy). */
export const clientEnv: Record<string, string> = {};

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Starts the CLI with its own KLUIS_HOME (KLUIS_KDF=min); `done` resolves when it exits, whatever the code. */
export function spawnKluis(home: string, args: string[], options: RunOptions = {}): { proc: ChildProcess; done: Promise<Run> } {
  const t0 = performance.now();
  const proc = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: home, KLUIS_HOME: home, KLUIS_KDF: 'min', ...clientEnv, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(proc);
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  proc.stdin!.on('error', () => undefined); // the CLI may exit without reading
  proc.stdin!.end(options.stdin ?? '');
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill('SIGKILL');
  }, options.timeoutMs ?? 120_000);
  const done = new Promise<Run>((resolve, reject) => {
    proc.on('error', (err) => {
      clearTimeout(timer);
      live.delete(proc);
      reject(err);
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(proc);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0, timedOut });
    });
  });
  return { proc, done };
}

/** Runs the CLI to completion. */
export function kluis(home: string, args: string[], options: RunOptions = {}): Promise<Run> {
  return spawnKluis(home, args, options).done;
}

/** Parses a successful --json run, or throws with everything needed to see why it failed. */
export function okJson<T = any>(r: Run, what: string): T { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}${r.signal ? ` (${r.signal})` : ''}${r.timedOut ? ' (timed out)' : ''}\nstderr: ${r.stderr}\nstdout: ${r.stdout.slice(-2000)}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`${what}: stdout is not one JSON document:\n${r.stdout.slice(-2000)}\nstderr: ${r.stderr}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Accounts, server, spaces

export interface Account {
  label: string;
  email: string;
  password: string;
  home: string;
  userId: string;
  deviceId: string;
}

export interface SyncClient {
  /** account label, e.g. 'A' */
  label: string;
  account: Account;
  home: string;
  /** the synced folder (absolute) */
  dir: string;
  spaceId: string;
  spaceName: string;
}

export interface Space {
  spaceId: string;
  name: string;
  clients: SyncClient[];
}

export interface SyncEnv {
  storage: 'minio' | 'fs';
  s3: LocalS3 | null;
  srv: RunningServer;
  /** With `haproxy`: the second node and HAProxy in front of both (`url` is HAProxy's). */
  nodeB: RunningServer | null;
  lb: Haproxy | null;
  url: string;
  port: number;
  dataDir: string;
  orgId: string;
  accounts: Account[];
  /** temp dir holding homes and folders */
  root: string;
  /** A new space created by the first of `members` (default: every account), the others added as editors. */
  newSpace(members?: Account[], name?: string): Promise<Space>;
  /** Stops the server process (default SIGKILL); data dir and port are kept for startServerAgain. */
  stopServer(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and data dir. */
  startServerAgain(): Promise<void>;
  close(): Promise<void>;
}

export interface SyncEnvOptions {
  /** account labels (also the device names); the first one is the organisation admin */
  accounts?: string[];
  storage?: 'minio' | 'fs';
  /** Two nodes behind HAProxy (see the header); needs PostgreSQL (usePostgres()). */
  haproxy?: boolean;
  /** Listen on a fixed free port so that the server knows its own address: links it makes point at it (with
   *  KLUIS_PORT=0 and no KLUIS_PUBLIC_URL, a link's address says port 0). */
  fixedPort?: boolean;
  /** More of the server's environment (e.g. KLUIS_PACK_THRESHOLD). */
  serverEnv?: Record<string, string>;
}

const rand = () => randomBytes(5).toString('hex');

/** One server (+ the file's shared RGW when storage is 'minio'), an organisation and the CLI accounts. */
export async function startSyncEnv(options: SyncEnvOptions = {}): Promise<SyncEnv> {
  await k.initCrypto();
  const storage = options.storage ?? 'minio';
  const labels = options.accounts ?? ['A', 'B'];
  const root = mkdtempSync(path.join(tmpdir(), 'kluis-sync-'));
  const dataDir = path.join(root, 'server-data');
  mkdirSync(dataDir);
  const s3 = storage === 'minio' ? await startLocalS3() : null;
  const serverEnv: Record<string, string> = { ...options.serverEnv, KLUIS_DATA_DIR: dataDir };
  // KLUIS_SYNC_SERVER_LOG=info (or debug) makes the server log more, for a post-mortem (default: warn).
  if (process.env.KLUIS_SYNC_SERVER_LOG) serverEnv.KLUIS_LOG_LEVEL = process.env.KLUIS_SYNC_SERVER_LOG;
  // KLUIS_SYNC_SERVER_NODE_OPTIONS becomes the server's NODE_OPTIONS, e.g. `--import scripts/bench/lib/cpu-profile.mjs`
  // (absolute path) to profile it; that preload writes into KLUIS_CPU_PROFILE_DIR, passed on too.
  if (process.env.KLUIS_SYNC_SERVER_NODE_OPTIONS) serverEnv.NODE_OPTIONS = process.env.KLUIS_SYNC_SERVER_NODE_OPTIONS;
  if (process.env.KLUIS_CPU_PROFILE_DIR) serverEnv.KLUIS_CPU_PROFILE_DIR = clientEnv.KLUIS_CPU_PROFILE_DIR = process.env.KLUIS_CPU_PROFILE_DIR;
  // KLUIS_SYNC_CLIENT_NODE_OPTIONS, the same for every `kluis` process the tests and benchmarks start.
  if (process.env.KLUIS_SYNC_CLIENT_NODE_OPTIONS) clientEnv.NODE_OPTIONS = process.env.KLUIS_SYNC_CLIENT_NODE_OPTIONS;
  // KLUIS_SODIUM=wasm keeps server and clients on libsodium's WASM build (docs/architecture.md §2), to compare.
  if (process.env.KLUIS_SODIUM) serverEnv.KLUIS_SODIUM = clientEnv.KLUIS_SODIUM = process.env.KLUIS_SODIUM;
  // Every suite can be run with the scan leaving (nearly) every file to its upload to hash (hash-later.ts).
  if (process.env.KLUIS_SYNC_HASH_LATER_MIN) clientEnv.KLUIS_SYNC_HASH_LATER_MIN = process.env.KLUIS_SYNC_HASH_LATER_MIN;
  // ... or with the scan hashing small files itself again (KLUIS_SYNC_HASH_LATER_SMALL=0), to compare.
  if (process.env.KLUIS_SYNC_HASH_LATER_SMALL) clientEnv.KLUIS_SYNC_HASH_LATER_SMALL = process.env.KLUIS_SYNC_HASH_LATER_SMALL;
  // KLUIS_S3_PAYLOAD_SIGNING=signed gives the server minio's hashed PUTs (docs/operations.md), to compare in the bench.
  if (process.env.KLUIS_S3_PAYLOAD_SIGNING) serverEnv.KLUIS_S3_PAYLOAD_SIGNING = process.env.KLUIS_S3_PAYLOAD_SIGNING;
  if (s3) Object.assign(serverEnv, { KLUIS_STORAGE: 'minio', KLUIS_S3_ENDPOINT: s3.endpoint, KLUIS_S3_ACCESS_KEY: s3.accessKey, KLUIS_S3_SECRET_KEY: s3.secretKey });
  const lbPort = options.haproxy ? await freePort() : 0;
  if (options.haproxy) Object.assign(serverEnv, { KLUIS_PUBLIC_URL: `https://127.0.0.1:${lbPort}`, KLUIS_TRUSTED_PROXIES: 'loopback' });
  if (options.fixedPort && !options.haproxy) {
    const p = await freePort();
    Object.assign(serverEnv, { KLUIS_PORT: String(p), KLUIS_PUBLIC_URL: `http://127.0.0.1:${p}` });
  }
  let srv = await startServer(serverEnv);
  const port = Number(new URL(srv.url).port);
  const nodeB = options.haproxy ? await startSecondNode(srv, serverEnv) : null;
  const lb = nodeB ? await startHaproxy(lbPort, [srv.url, nodeB.url]) : null;
  if (lb) clientEnv.NODE_EXTRA_CA_CERTS = lb.caFile;
  const url = lb?.url ?? srv.url;

  // If the organisation or the accounts cannot be made, stop what was started (nobody will call close()).
  const { orgId, accounts } = await (async () => {
    const adminEmail = `a-${rand()}@example.be`;
    const created = await admin(dataDir, ['org', 'create', '--name', 'OCMW Sync', '--enterprise-number', enterpriseNumber(), '--admin-email', adminEmail]);
    const orgId: string = created.orgId;

    const signup = async (label: string, email: string, invite: string): Promise<Account> => {
      const home = path.join(root, `home-${label}`);
      mkdirSync(home, { mode: 0o700 });
      const password = `wachtwoord ${label} ${rand()}`;
      const r = await kluis(home, ['--json', 'signup', '--server', url, '--email', email, '--invite', invite, '--password-stdin', '--device-name', label], { stdin: `${password}\n` });
      const out = okJson(r, `signup ${label}`);
      return { label, email, password, home, userId: out.userId, deviceId: out.deviceId };
    };
    const first = await signup(labels[0]!, adminEmail, created.inviteToken);
    const adminToken = sessionOf(first.home).token;
    // The admin's own CLI session invites the others: an admin act, so it passes 2-step verification first.
    await enrolTotp(srv.url, { token: adminToken }); // a node directly: the test process does not trust HAProxy's certificate
    const others = await Promise.all(labels.slice(1).map(async (label) => {
      const email = `${label.toLowerCase()}-${rand()}@example.be`;
      const inv = await call(srv.url, 'POST', `/api/v1/orgs/${orgId}/invites`, { token: adminToken, json: { email } });
      if (inv.status !== 201) throw new Error(`invite ${label}: ${JSON.stringify(inv.body)}`);
      return signup(label, email, inv.body.token);
    }));
      return { orgId, accounts: [first, ...others] };
  })().catch(async (err: unknown) => {
    await lb?.stop();
    await nodeB?.stop().catch(() => undefined);
    await srv.stop().catch(() => undefined);
    throw err;
  });
  let spaces = 0;

  const env: SyncEnv = {
    storage,
    s3,
    get srv() {
      return srv;
    },
    nodeB,
    lb,
    url,
    port,
    dataDir,
    orgId,
    accounts,
    root,
    async newSpace(members = accounts, name?: string) {
      const spaceName = name ?? `Dossiers ${++spaces}`;
      const owner = members[0]!;
      const space = okJson(await kluis(owner.home, ['--json', 'space', 'create', spaceName]), 'space create');
      // By name (unique per account here): an id may start with '-' and would read as an option.
      for (const m of members.slice(1)) {
        okJson(await kluis(owner.home, ['--json', 'space', 'add-member', spaceName, m.email, '--role', 'editor']), `add-member ${m.label}`);
      }
      const base = path.join(root, `space-${spaces}-${rand()}`);
      const clients = members.map((account) => {
        const dir = path.join(base, account.label);
        mkdirSync(dir, { recursive: true });
        return { label: account.label, account, home: account.home, dir, spaceId: space.spaceId as string, spaceName };
      });
      return { spaceId: space.spaceId, name: spaceName, clients };
    },
    async stopServer(signal = 'SIGKILL') {
      await srv.stop(signal);
    },
    async startServerAgain() {
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          srv = await startServer({ ...serverEnv, KLUIS_PORT: String(port) });
          return;
        } catch (err) {
          // The port may linger for a moment after a SIGKILL.
          if (Date.now() > deadline) throw err;
          await sleep(250);
        }
      }
    },
    async close() {
      for (const p of live) p.kill('SIGKILL');
      await lb?.stop();
      await nodeB?.stop().catch(() => undefined);
      await srv.stop().catch(() => undefined);
      await s3?.stop();
      // KLUIS_SYNC_KEEP=1 keeps homes, folders and the server's data dir for a post-mortem.
      if (process.env.KLUIS_SYNC_KEEP === '1') console.log(`sync-env: kept ${root}`);
      else rmSync(root, { recursive: true, force: true });
    },
  };
  return env;
}

export function sessionOf(home: string): { server: string; token: string; deviceId: string; userId: string } {
  return JSON.parse(readFileSync(path.join(home, 'session.json'), 'utf8'));
}

export function keysOf(home: string): k.AccountKeys {
  const f = JSON.parse(readFileSync(path.join(home, 'keys.json'), 'utf8'));
  return k.accountKeysFromSecrets({ encSecretKey: k.fromBase64Url(f.encSecretKey), signSeed: k.fromBase64Url(f.signSeed) }, f);
}

// ---------------------------------------------------------------------------------------------------------------
// Sync runs

// The engine's own report type: the harness is checked against what `--once --json` really prints.
import type { SyncReport } from '../../desktop/dist/sync/engine.js';
export type { SyncReport };

/** Args of `kluis --json sync DIR --space ID --once`. */
export function onceArgs(c: SyncClient, extra: string[] = []): string[] {
  return ['--json', 'sync', c.dir, '--space', c.spaceId, '--once', ...extra];
}

/** Default cap on retries for --once, so an engine that cannot reach anything fails the test instead of hanging. */
const GIVE_UP = { KLUIS_SYNC_GIVE_UP_MS: '60000' };

/** `kluis sync --once --json`; returns the report, throws (with stderr) on any other exit than 0. */
export async function syncOnce(c: SyncClient, options: RunOptions & { args?: string[] } = {}): Promise<SyncReport> {
  const r = await kluis(c.home, onceArgs(c, options.args), { ...options, env: { ...GIVE_UP, ...options.env } });
  return okJson<SyncReport>(r, `sync --once on ${c.label}`);
}

/** Starts `kluis sync --once --json` and returns the process (for kill tests). */
export function spawnSyncOnce(c: SyncClient, options: RunOptions & { args?: string[] } = {}) {
  return spawnKluis(c.home, onceArgs(c, options.args), { ...options, env: { ...GIVE_UP, ...options.env } });
}

export const changed = (r: SyncReport) => r.uploaded + r.downloaded + r.deletedLocal + r.deletedRemote + r.moved + r.conflicts.length;

export interface Converged {
  rounds: number;
  reports: SyncReport[];
  tree: Tree;
}

/**
 * Runs --once on each client in turn until every tree is equal (at most `maxRounds` rounds), then (with `quiet`,
 * the default) one more round in which nothing may change: no ping-pong, no re-download of one's own uploads.
 * Throws with the difference when it does not converge.
 */
export async function converge(clients: SyncClient[], options: { maxRounds?: number; quiet?: boolean; tree?: TreeOptions } = {}): Promise<Converged> {
  const reports: SyncReport[] = [];
  const maxRounds = options.maxRounds ?? 4;
  let trees: Tree[] = [];
  let round = 0;
  for (;;) {
    round++;
    for (const c of clients) reports.push(await syncOnce(c));
    trees = clients.map((c) => tree(c.dir, options.tree));
    if (trees.every((t) => treesEqual(t, trees[0]!))) break;
    if (round >= maxRounds) {
      throw new Error(`no convergence after ${round} rounds:\n${clients.slice(1).map((c, i) => `${clients[0]!.label} vs ${c.label}: ${treeDiff(trees[0]!, trees[i + 1]!)}`).join('\n')}\nreports: ${JSON.stringify(reports.slice(-clients.length))}`);
    }
  }
  if (options.quiet ?? true) {
    for (const c of clients) {
      const r = await syncOnce(c);
      reports.push(r);
      if (changed(r) !== 0) throw new Error(`${c.label} still changed things after convergence (ping-pong?): ${JSON.stringify(r)}`);
    }
    const again = clients.map((c) => tree(c.dir, options.tree));
    for (let i = 0; i < clients.length; i++) {
      if (!treesEqual(again[i]!, trees[i]!)) throw new Error(`${clients[i]!.label}'s tree changed in the quiet round: ${treeDiff(trees[i]!, again[i]!)}`);
    }
  }
  return { rounds: round, reports, tree: trees[0]! };
}

// ---------------------------------------------------------------------------------------------------------------
// Watching client

export interface Watcher {
  proc: ChildProcess;
  /** parsed JSON lines so far (a line that is not JSON is kept as {raw}) */
  events: any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  stderr(): string;
  /** The first event at index >= `from` matching `pred` (waits up to timeoutMs, then throws with what was seen). */
  waitFor(pred: (e: any) => boolean, options?: { timeoutMs?: number; from?: number; what?: string }): Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** SIGTERM (or `signal`) and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<Run>;
  done: Promise<Run>;
}

/** Starts a watching `kluis --json sync DIR --space ID [args]` whose JSON lines are collected as events. */
export function watch(c: SyncClient, args: string[] = [], options: RunOptions = {}): Watcher {
  const { proc, done } = spawnKluis(c.home, ['--json', 'sync', c.dir, '--space', c.spaceId, ...args], { timeoutMs: 600_000, ...options });
  const events: any[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
  let buf = '';
  let err = '';
  proc.stdout!.on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      try {
        events.push(JSON.parse(line));
      } catch {
        events.push({ raw: line });
      }
    }
  });
  proc.stderr!.on('data', (d: string) => (err += d));
  let exited = false;
  void done.then(() => (exited = true));
  return {
    proc,
    events,
    stderr: () => err,
    done,
    async waitFor(pred, opts = {}) {
      const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
      for (;;) {
        const hit = events.slice(opts.from ?? 0).find(pred);
        if (hit) return hit;
        if (exited || Date.now() > deadline) {
          throw new Error(`watcher on ${c.label}: ${exited ? 'exited' : 'timed out'} waiting for ${opts.what ?? 'an event'}; events: ${JSON.stringify(events.slice(-30))}\nstderr: ${err.slice(-2000)}`);
        }
        await sleep(50);
      }
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return done;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Local trees and files

/** relPath (NFC, POSIX) -> sha256 hex of a file, 'dir' for a folder, 'symlink' / 'special' for the rest. */
export type Tree = Record<string, string>;

export interface TreeOptions {
  /** keep symlinks and special files in the map (default: leave them out) */
  includeLinks?: boolean;
}

export const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

/**
 * The content of a folder: every file (by sha256) and every folder, ignoring the engine's `.kluis-tmp-*` files
 * and the reserved `.kluis` at the root. Names are NFC-normalised; two names on disk that normalise to one path
 * throw (that is a duplicate the engine must never create).
 */
export function tree(dir: string, options: TreeOptions = {}): Tree {
  const out: Tree = {};
  const walk = (abs: string, rel: string) => {
    for (const name of readdirSync(abs)) {
      if (name.startsWith(TEMP_PREFIX) || (rel === '' && name === '.kluis')) continue;
      const key = (rel ? `${rel}/` : '') + name.normalize('NFC');
      const p = path.join(abs, name);
      const st = lstatSync(p);
      if (key in out) throw new Error(`two names in ${abs} are the same path after NFC normalisation: ${JSON.stringify(key)}`);
      if (st.isDirectory()) {
        out[key] = 'dir';
        walk(p, key);
      } else if (st.isFile()) {
        out[key] = sha256(readFileSync(p));
      } else if (options.includeLinks) {
        out[key] = st.isSymbolicLink() ? 'symlink' : 'special';
      }
    }
  };
  walk(dir, '');
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function treesEqual(a: Tree, b: Tree): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((key) => b[key] === a[key]);
}

/** A short human description of how two trees differ. */
export function treeDiff(a: Tree, b: Tree): string {
  const out: string[] = [];
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (a[key] === b[key]) continue;
    if (!(key in b)) out.push(`only left: ${key}`);
    else if (!(key in a)) out.push(`only right: ${key}`);
    else out.push(`differs: ${key}`);
  }
  return out.length ? out.slice(0, 40).join('; ') + (out.length > 40 ? ` (+${out.length - 40} more)` : '') : 'equal';
}

/** Paths that look like conflict copies (`name (conflict <device> <date>).ext`). */
export const conflictCopies = (t: Tree) => Object.keys(t).filter((p) => / \(conflict [^)]*\)/.test(p));

let mtimeTick = 0;
/**
 * Writes a file (creating parent folders) and backdates its mtime by a few seconds, each write to a distinct value:
 * the scan skips files modified within the last second as "settling", and two writes of the same size must not
 * look unchanged. Returns the sha256 of what was written.
 */
export function write(dir: string, rel: string, data: Uint8Array | string): string {
  const p = path.join(dir, ...rel.split('/'));
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, data);
  backdate(p);
  return sha256(typeof data === 'string' ? Buffer.from(data) : data);
}

/** The text of a file in a synced folder, or null while it is not there. */
export function textOf(dir: string, rel: string): string | null {
  try {
    return read(dir, rel).toString();
  } catch {
    return null;
  }
}

/** Waits until `fn` answers something truthy (checked every 100 ms); throws after `ms`. */
export async function until<T>(what: string, fn: () => T | null | undefined | false | Promise<T | null | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Sets the mtime of `p` a few seconds into the past, distinct from every earlier call. */
export function backdate(p: string): void {
  const t = (Date.now() - 5_000 - (++mtimeTick % 1000)) / 1000;
  utimesSync(p, t, t);
}

export const read = (dir: string, rel: string) => readFileSync(path.join(dir, ...rel.split('/')));

/** Deterministic bytes (SplitMix32 stream, test/helpers/det-bytes.ts) as a Buffer. */
export const bytes = (seed: number, length: number) => Buffer.from(detBytes(seed >>> 0, length));

/** A small deterministic PRNG for test schedules (mulberry32); print the seed in the test log. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Server-side view (independent of the engine): decrypts the change log with a member's keys

export interface RemoteFile {
  fileId: string;
  versionId: string;
  path: string;
  kind: 'file' | 'dir';
  size: number;
  hash: string;
  /** the manifest's chunk list: [chunk id, plaintext size] */
  chunks: [string, number][];
}

/** One version as the space's change log lists it. */
interface LoggedVersion {
  seq: number;
  fileId: string;
  versionId: string;
  parent: string | null;
  keyEpoch: number;
  manifest: string;
  deleted: boolean;
  authorDeviceId: string | null;
}

/** Every version in the space's change log, in order, and a way to open one's manifest with c's keys. */
async function changeLog(c: SyncClient): Promise<{ head: number; versions: LoggedVersion[]; open: (v: LoggedVersion) => k.Manifest }> {
  await k.initCrypto();
  const keys = keysOf(c.home);
  const { server, token } = sessionOf(c.home);
  const details = await call(server, 'GET', `/api/v1/spaces/${c.spaceId}`, { token });
  if (details.status !== 200) throw new Error(`space details: ${JSON.stringify(details.body)}`);
  const pairs = new Map<number, k.SpaceKeyPair>();
  for (const w of details.body.myWraps as k.SpaceKeyWrap[]) pairs.set(w.keyEpoch, k.openSpaceKeyWrap(w, { spaceId: c.spaceId, keyEpoch: w.keyEpoch }, keys, () => true));
  const versions: LoggedVersion[] = [];
  const wraps = new Map<string, k.FileKeyWrap[]>();
  let since = 0;
  let head = 0;
  for (;;) {
    const page = await call(server, 'GET', `/api/v1/spaces/${c.spaceId}/changes?since=${since}&limit=5000`, { token });
    if (page.status !== 200) throw new Error(`changes: ${JSON.stringify(page.body)}`);
    versions.push(...(page.body.changes as LoggedVersion[]));
    for (const [fileId, list] of Object.entries(page.body.fileKeyWraps as Record<string, k.FileKeyWrap[]>)) wraps.set(fileId, list);
    head = page.body.head;
    since = page.body.next;
    if (!page.body.more) break;
  }
  const open = (v: LoggedVersion): k.Manifest => {
    const wrap = (wraps.get(v.fileId) ?? []).find((w) => w.keyEpoch === v.keyEpoch);
    if (!wrap) throw new Error(`no file key wrap for ${v.fileId} at epoch ${v.keyEpoch}`);
    const fileKey = k.openFileKeyWrap(wrap, { spaceId: c.spaceId, keyEpoch: v.keyEpoch, fileId: v.fileId }, pairs.get(v.keyEpoch)!, () => true);
    return k.openManifest(k.fromBase64Url(v.manifest), k.deriveFileSubkeys(fileKey), { fileId: v.fileId, versionId: v.versionId }, () => true).manifest;
  };
  return { head, versions, open };
}

/** The live (not deleted) files of the space as the server's change log says, by path; opened with c's keys. */
export async function remoteState(c: SyncClient): Promise<{ seq: number; byPath: Map<string, RemoteFile[]> }> {
  const { head, versions, open } = await changeLog(c);
  const heads = new Map<string, LoggedVersion>();
  for (const v of versions) heads.set(v.fileId, v);
  const byPath = new Map<string, RemoteFile[]>();
  for (const [fileId, v] of heads) {
    if (v.deleted) continue;
    const manifest = open(v);
    if (manifest.deleted) continue;
    const list = byPath.get(manifest.path) ?? [];
    list.push({ fileId, versionId: v.versionId, path: manifest.path, kind: manifest.kind, size: manifest.size, hash: manifest.hash, chunks: manifest.chunks });
    byPath.set(manifest.path, list);
  }
  return { seq: head, byPath };
}

/** One version in a file's history on the server (remoteHistory); ids cut to 6 characters. */
export interface HistoryLine {
  seq: number;
  fileId: string;
  versionId: string;
  parent: string;
  /** the manifest's path, or why it could not be opened */
  path: string;
  deleted: boolean;
  device: string;
}

/** For a failing test's log: every version, in change-log order, of each file that was ever at one of `paths`. */
export async function remoteHistory(c: SyncClient, paths: readonly string[]): Promise<HistoryLine[]> {
  const { versions, open } = await changeLog(c);
  const cut = (id: string | null) => (id ? id.slice(0, 6) : '-');
  const lines = versions.map((v): HistoryLine => {
    let p: string;
    try {
      p = open(v).path;
    } catch (err) {
      p = `(not opened: ${(err as Error).message})`;
    }
    return { seq: v.seq, fileId: cut(v.fileId), versionId: cut(v.versionId), parent: cut(v.parent), path: p, deleted: v.deleted, device: cut(v.authorDeviceId) };
  });
  const wanted = new Set(paths);
  const files = new Set(lines.filter((l) => wanted.has(l.path)).map((l) => l.fileId));
  return lines.filter((l) => files.has(l.fileId));
}

/** Paths with more than one live file on the server (duplicates). */
export async function remoteDuplicates(c: SyncClient): Promise<string[]> {
  const { byPath } = await remoteState(c);
  return [...byPath].filter(([, files]) => files.length > 1).map(([p]) => p);
}

/**
 * Commits an empty file at `relPath` straight through the API with c's keys, bypassing the engine: the way to put a
 * path on the server that a well-behaved client would never create (e.g. a name reserved for Kluis itself).
 * Returns the HTTP status.
 */
export async function commitRawFile(c: SyncClient, relPath: string): Promise<number> {
  await k.initCrypto();
  const keys = keysOf(c.home);
  const { server, token } = sessionOf(c.home);
  const details = await call(server, 'GET', `/api/v1/spaces/${c.spaceId}`, { token });
  const epoch = Math.max(...(details.body.myWraps as k.SpaceKeyWrap[]).map((w) => w.keyEpoch));
  const wrap = (details.body.myWraps as k.SpaceKeyWrap[]).find((w) => w.keyEpoch === epoch)!;
  const pair = k.openSpaceKeyWrap(wrap, { spaceId: c.spaceId, keyEpoch: epoch }, keys, () => true);
  const author = { keys } as unknown as User;
  const v = version(author, c.spaceId, pair, epoch, newFile(), { parent: null, path: relPath });
  const res = await call(server, 'POST', `/api/v1/spaces/${c.spaceId}/commits`, { token, json: { versions: [v.entry] } });
  return res.status;
}
