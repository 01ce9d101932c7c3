// The audit witness (docs/operations.md "Audit witness", docs/crypto.md §12 "Merkle tree log"): a process an
// organisation runs on a machine of its own. Each round it fetches the newest signed tree head, checks its signature
// against the server key it pinned on its first run, and checks that the head extends the last head it holds (a
// consistency proof against the root IT holds, never the server's copy). A head smaller than the held one (rollback),
// a different root at the held size or a proof that fails (fork: the history was rewritten, even if re-signed with
// the server's key), a signature that fails or a changed key is an alarm: recorded in the state directory, reported
// to the server (an audit.witness.alert entry, POST …/audit/witness-alerts) and the process exits non-zero.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ConsistencyProof,
  fromHex,
  merkleHashesFromHex,
  SignedTreeHead,
  TreeHeadList,
  verifyAuditTreeHead,
  verifyMerkleConsistency,
  type WitnessAlertKind,
} from '@kluis/shared';
import type * as z from 'zod';
import { writeFileAtomicallySync } from '../fsync-dir.js';

export const WITNESS_STATE_FILE = 'witness.json';
export const WITNESS_ALERTS_FILE = 'alerts.jsonl';
const STATE_FORMAT = 'kluis-audit-witness/v1';

export interface WitnessState {
  format: typeof STATE_FORMAT;
  server: string;
  orgId: string;
  /** The server's audit key, pinned at the first run. */
  publicKey: string;
  /** The newest head this witness has checked. */
  head: SignedTreeHead | null;
  checkedAt: number;
}

export interface WitnessOptions {
  server: string;
  orgId: string;
  token: string;
  stateDir: string;
  /** Pin this key instead of the one /api/v1/info announces at the first run. */
  publicKey?: string;
  now?: () => number;
}

export type WitnessResult =
  | { ok: true; head: SignedTreeHead | null; previous: SignedTreeHead | null; firstRun: boolean }
  | { ok: false; alert: { kind: WitnessAlertKind; reason: string; held: SignedTreeHead | null; seen: SignedTreeHead | null }; reported: boolean };

/** The witness could not do its check (network, authorisation, a bad state file): not an alarm, but not a pass. */
export class WitnessError extends Error {
  override name = 'WitnessError';
}

function readState(dir: string): WitnessState | null {
  let text: string;
  try {
    text = readFileSync(path.join(dir, WITNESS_STATE_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new WitnessError(`${dir}: the state file cannot be read (${(err as Error).message})`);
  }
  const v = JSON.parse(text) as WitnessState;
  if (v?.format !== STATE_FORMAT || typeof v.publicKey !== 'string' || (v.head !== null && !SignedTreeHead.safeParse(v.head).success)) {
    throw new WitnessError(`${path.join(dir, WITNESS_STATE_FILE)}: not a ${STATE_FORMAT} state file; it is not replaced`);
  }
  return v;
}

function writeState(dir: string, state: WitnessState): void {
  writeFileAtomicallySync(path.join(dir, WITNESS_STATE_FILE), JSON.stringify(state) + '\n');
}

export class Witness {
  private readonly base: string;
  private readonly now: () => number;

  constructor(private readonly o: WitnessOptions) {
    this.base = o.server.replace(/\/+$/, '');
    this.now = o.now ?? Date.now;
    mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  }

  private async get<T extends z.ZodTypeAny>(url: string, schema: T): Promise<{ status: number; body: z.infer<T> | null }> {
    let res: Response;
    try {
      res = await fetch(this.base + url, { headers: { authorization: `Bearer ${this.o.token}`, 'x-kluis-client': 'kluis-witness/0.1.0' } });
    } catch (err) {
      throw new WitnessError(`${this.base}: unreachable (${(err as Error).message})`);
    }
    const body = (await res.json().catch(() => null)) as unknown;
    if (res.status === 404) return { status: 404, body: null };
    if (res.status !== 200) {
      const msg = (body as { error?: { message?: string } } | null)?.error?.message ?? `HTTP ${res.status}`;
      throw new WitnessError(`${url}: ${msg}`);
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) throw new WitnessError(`${url}: the answer is not what the API documents`);
    return { status: 200, body: parsed.data as z.infer<T> };
  }

  private async pinnedKey(state: WitnessState | null): Promise<string> {
    if (state) return state.publicKey;
    if (this.o.publicKey) return this.o.publicKey;
    const res = await fetch(`${this.base}/api/v1/info`).catch((err: unknown) => {
      throw new WitnessError(`${this.base}: unreachable (${(err as Error).message})`);
    });
    const info = (await res.json().catch(() => null)) as { auditPublicKey?: unknown } | null;
    if (typeof info?.auditPublicKey !== 'string') throw new WitnessError(`${this.base}/api/v1/info: no auditPublicKey`);
    return info.auditPublicKey;
  }

  /** One round: fetch, check, and on success remember the newest head. */
  async check(): Promise<WitnessResult> {
    const state = readState(this.o.stateDir);
    if (state && (state.server !== this.base || state.orgId !== this.o.orgId)) {
      throw new WitnessError(`${this.o.stateDir}: holds the state of ${state.server} (organisation ${state.orgId}); use a directory per server and organisation`);
    }
    const key = await this.pinnedKey(state);
    const held = state?.head ?? null;
    const org = encodeURIComponent(this.o.orgId);
    const list = (await this.get(`/api/v1/orgs/${org}/audit/tree-heads?after=${held?.size ?? 0}&limit=1`, TreeHeadList)).body;
    const latest = list?.latest ?? null;
    const alarm = (kind: WitnessAlertKind, reason: string, seen: SignedTreeHead | null) => this.alarm({ kind, reason, held, seen });

    if (latest) {
      if (latest.signer !== key) return alarm('key-changed', `the newest tree head is signed by ${latest.signer}, not by the pinned key ${key}`, latest);
      try {
        verifyAuditTreeHead(latest, latest.signature, key);
      } catch {
        return alarm('bad-signature', `the tree head of size ${latest.size} does not verify with the server's key`, latest);
      }
    }
    if (held) {
      if (!latest) return alarm('rollback', `the server has no tree head, but this witness holds one of size ${held.size}`, null);
      if (latest.size < held.size) return alarm('rollback', `the newest tree head has size ${latest.size}, smaller than the ${held.size} this witness holds: entries were removed`, latest);
      if (latest.size === held.size) {
        if (latest.root !== held.root) return alarm('fork', `a different root for the ${held.size} entries this witness holds: the history was rewritten`, latest);
      } else {
        const proof = (await this.get(`/api/v1/orgs/${org}/audit/proofs/consistency?from=${held.size}&to=${latest.size}`, ConsistencyProof)).body;
        if (!proof) return alarm('rollback', `the server signs no tree head of size ${held.size} any more: the history was cut or rewritten`, latest);
        if (proof.from.root !== held.root) return alarm('fork', `the server's tree head of size ${held.size} has another root than the one this witness holds: the history was rewritten`, latest);
        let consistent = false;
        try {
          consistent = verifyMerkleConsistency(held.size, latest.size, fromHex(held.root), fromHex(latest.root), merkleHashesFromHex(proof.path));
        } catch {
          consistent = false;
        }
        if (!consistent) return alarm('fork', `the tree head of size ${latest.size} does not extend the one of size ${held.size} this witness holds: the history was rewritten`, latest);
      }
    }
    writeState(this.o.stateDir, { format: STATE_FORMAT, server: this.base, orgId: this.o.orgId, publicKey: key, head: latest ?? held, checkedAt: this.now() });
    return { ok: true, head: latest ?? held, previous: held, firstRun: !state };
  }

  /** Records the alarm locally (always) and at the server (if it still answers); the held head is never replaced. */
  private async alarm(alert: { kind: WitnessAlertKind; reason: string; held: SignedTreeHead | null; seen: SignedTreeHead | null }): Promise<WitnessResult> {
    appendFileSync(path.join(this.o.stateDir, WITNESS_ALERTS_FILE), JSON.stringify({ at: this.now(), server: this.base, orgId: this.o.orgId, ...alert }) + '\n', { mode: 0o600 });
    let reported = false;
    try {
      const res = await fetch(`${this.base}/api/v1/orgs/${encodeURIComponent(this.o.orgId)}/audit/witness-alerts`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.o.token}`, 'content-type': 'application/json', 'x-kluis-client': 'kluis-witness/0.1.0' },
        body: JSON.stringify({ kind: alert.kind, reason: alert.reason.slice(0, 500), heldSize: alert.held?.size ?? null, heldRoot: alert.held?.root ?? null, seenSize: alert.seen?.size ?? null, seenRoot: alert.seen?.root ?? null }),
      });
      reported = res.status === 201;
    } catch {
      reported = false;
    }
    return { ok: false, alert, reported };
  }
}
