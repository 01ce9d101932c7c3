// Runs the rules over the audit trail as it grows (docs/admin.md "Incidents"). A poller, not a hook in the log: an
// entry is evaluated only once its transaction has committed (a rolled-back request opens nothing), and with several
// API nodes on PostgreSQL every node's entries are seen, in seq order, whichever node wrote them. Each round reads the
// entries after a cursor kept in the database (incident_cursor) and moves it in the same transaction as the incidents
// it opens, so each entry is evaluated exactly once. On PostgreSQL a round first tries a transaction-scoped advisory
// lock (LOCK_NAMESPACE, INCIDENT_LOCK): the node that gets it evaluates, the others skip the round. It is not the
// maintenance lock itself (db/maintenance-lock.ts): that one is held for a whole maintenance run, an hour's compaction
// at worst, and incidents must not wait for it. Every `verifyEveryMs` the round also verifies the whole chain; a
// chain that fails opens a very high incident in every organisation.
import { type OrgRole } from '@kluis/shared';
import type { Db, Tx } from '../db/db.js';
import type { AuditLog } from '../audit/types.js';
import type { AuditRow } from '../audit/rows.js';
import { LOCK_NAMESPACE } from '../db/postgres.js';
import { evaluate, type RuleContext, type RuleEntry, type RuleMatch, type WindowQuery } from './rules.js';
import { loadSettings, openIncidentId, openOrFeed } from './store.js';

/** Beside db/postgres.ts's locks (1 writer, 2 audit, 3 migration, 4 maintenance). */
export const INCIDENT_LOCK = 16;

export interface WatcherOptions {
  intervalMs: number;
  /** how often the chain is verified (0: never) */
  verifyEveryMs: number;
  /** entries per round */
  batch?: number;
  postgres: boolean;
  now?: () => number;
  onError: (err: unknown) => void;
  /** after each round (the notifier sends the mails of incidents opened or marked a leak) */
  afterRound?: () => Promise<void>;
}

const toRuleEntry = (r: Pick<AuditRow, 'seq' | 'ts' | 'org_id' | 'actor_user_id' | 'actor_device_id' | 'action' | 'target_id' | 'outcome' | 'ip' | 'details'>): RuleEntry => ({
  seq: Number(r.seq), ts: Number(r.ts), orgId: r.org_id, actorUserId: r.actor_user_id, actorDeviceId: r.actor_device_id, action: r.action, targetId: r.target_id,
  outcome: r.outcome as RuleEntry['outcome'], ip: r.ip, details: r.details === null ? null : (JSON.parse(r.details) as RuleEntry['details']),
});
const COLUMNS = ['seq', 'ts', 'org_id', 'actor_user_id', 'actor_device_id', 'action', 'target_id', 'outcome', 'ip', 'details'];

/** The rules' questions, answered inside the round's transaction (memoised for the round). */
function ruleContext(trx: Tx): RuleContext {
  const settings = new Map<string, Awaited<ReturnType<typeof loadSettings>>>();
  const roles = new Map<string, OrgRole | null>();
  return {
    async settings(orgId) {
      if (!settings.has(orgId)) settings.set(orgId, await loadSettings(trx, orgId));
      return settings.get(orgId)!;
    },
    async window(q: WindowQuery) {
      const rows = trx('audit_log').select(COLUMNS).where('org_id', q.orgId).whereIn('action', [...q.actions]).where('ts', '>=', q.since).where('seq', '<=', q.upTo);
      if (q.actorUserId !== undefined) rows.where('actor_user_id', q.actorUserId);
      if (q.targetId !== undefined) rows.where('target_id', q.targetId);
      if (q.ip !== undefined) rows.where('ip', q.ip);
      if (q.outcome !== undefined) rows.where('outcome', q.outcome);
      return ((await rows.orderBy('seq', 'asc').limit(10_000)) as AuditRow[]).map(toRuleEntry);
    },
    async denialsOf(orgId, actorUserId, since, upTo) {
      const rows = await trx('audit_log').select(COLUMNS).where({ org_id: orgId, actor_user_id: actorUserId, outcome: 'denied' }).where('ts', '>=', since).where('seq', '<=', upTo)
        .orderBy('seq', 'asc').limit(10_000);
      return (rows as AuditRow[]).map(toRuleEntry);
    },
    async roleOf(userId) {
      if (!roles.has(userId)) roles.set(userId, ((await trx('users').where({ id: userId }).first('role')) as { role: OrgRole } | undefined)?.role ?? null);
      return roles.get(userId)!;
    },
    async sawNetwork(deviceId, network, ts) {
      const known = (await trx('incident_networks').where({ device_id: deviceId }).select('network')) as { network: string }[];
      if (known.some((k) => k.network === network)) return 'known';
      await trx('incident_networks').insert({ device_id: deviceId, network, first_seen: ts });
      return known.length === 0 ? 'first' : 'new';
    },
    async isOpen(orgId, rule, subject) {
      return (await openIncidentId(trx, orgId, rule, subject)) !== null;
    },
  };
}

export class IncidentWatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly now: () => number;

  constructor(private readonly db: Db, private readonly audit: AuditLog, private readonly options: WatcherOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.kick(), this.options.intervalMs);
    this.timer.unref();
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.round().catch(this.options.onError).finally(() => {
      this.running = undefined;
    });
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One round: evaluates the entries after the cursor (and verifies the chain when due). Answers the incidents opened. */
  async round(): Promise<number> {
    let opened = 0;
    for (;;) {
      const r = await this.db.transaction((trx) => this.evaluateBatch(trx));
      opened += r.opened;
      if (!r.more) break;
    }
    opened += await this.verifyIfDue();
    if (this.options.afterRound) await this.options.afterRound();
    return opened;
  }

  private async lock(trx: Tx): Promise<boolean> {
    if (!this.options.postgres) return true;
    const got = await trx.raw('SELECT pg_try_advisory_xact_lock(?, ?) AS ok', [LOCK_NAMESPACE, INCIDENT_LOCK]);
    return Boolean((got as { rows: { ok: boolean }[] }).rows[0]?.ok);
  }

  private async evaluateBatch(trx: Tx): Promise<{ opened: number; more: boolean }> {
    if (!(await this.lock(trx))) return { opened: 0, more: false };
    const cursor = Number(((await trx('incident_cursor').where({ id: 1 }).first('seq')) as { seq: number | string }).seq);
    const batch = this.options.batch ?? 200;
    const rows = (await trx('audit_log').select(COLUMNS).where('seq', '>', cursor).orderBy('seq', 'asc').limit(batch)) as AuditRow[];
    if (rows.length === 0) return { opened: 0, more: false };
    const ctx = ruleContext(trx);
    let opened = 0;
    for (const row of rows) {
      for (const m of await evaluate(toRuleEntry(row), ctx)) {
        if ((await openOrFeed(trx, this.audit, m, this.now())).opened) opened++;
      }
    }
    await trx('incident_cursor').where({ id: 1 }).update({ seq: Number(rows[rows.length - 1]!.seq) });
    return { opened, more: rows.length === batch };
  }

  /** Verifies the whole chain when due; on failure, opens (or feeds) a very high incident in every organisation. */
  private async verifyIfDue(): Promise<number> {
    if (this.options.verifyEveryMs <= 0) return 0;
    const now = this.now();
    // Claim the verification first, so that one node verifies per period.
    const claimed = await this.db.transaction(async (trx) => {
      if (!(await this.lock(trx))) return false;
      const row = (await trx('incident_cursor').where({ id: 1 }).first('verified_at')) as { verified_at: number | string };
      if (now - Number(row.verified_at) < this.options.verifyEveryMs) return false;
      await trx('incident_cursor').where({ id: 1 }).update({ verified_at: now });
      return true;
    });
    if (!claimed) return 0;
    const result = await this.audit.verify();
    if (result.ok) return 0;
    const broken = result.firstBroken ?? { seq: 0, reason: 'unknown' };
    return this.db.transaction(async (trx) => {
      let opened = 0;
      const orgs = (await trx('orgs').select('id')) as { id: string }[];
      for (const org of orgs) {
        const m: RuleMatch = { orgId: org.id, rule: 'chain_broken', subject: 'audit-chain', severity: 'very_high', seqs: [], details: { firstBrokenSeq: broken.seq, reason: broken.reason.slice(0, 300) } };
        if ((await openOrFeed(trx, this.audit, m, now)).opened) opened++;
      }
      return opened;
    });
  }
}
