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
/** At most this many entries of one window are read (a window beyond it has long passed every threshold). */
const WINDOW_MAX = 10_000;
const COLUMNS = ['seq', 'ts', 'org_id', 'actor_user_id', 'actor_device_id', 'action', 'target_id', 'outcome', 'ip', 'details'];

/** What a round remembers from batch to batch. */
class RoundMemo {
  settings = new Map<string, Awaited<ReturnType<typeof loadSettings>>>();
  roles = new Map<string, OrgRole | null>();
  open = new Map<string, boolean>();
  networks = new Map<string, Set<string>>();
  /** the entries of each window read so far, by criteria, up to seq `upTo` */
  windows = new Map<string, { upTo: number; rows: RuleEntry[] }>();

  /** Forgets what may change between rounds (thresholds, roles, open incidents, networks); bounds the windows. */
  nextRound(): this {
    this.settings = new Map();
    this.roles = new Map();
    this.open = new Map();
    // Networks too: a round that failed has inserted networks that rolled back.
    this.networks = new Map();
    if (this.windows.size > 50_000) this.windows = new Map();
    return this;
  }
}

/** The rules' questions, answered inside the batch's transaction (memoised for the round). */
function ruleContext(trx: Tx, memo: RoundMemo): RuleContext & { markOpen(m: RuleMatch): void } {
  const { settings, roles, networks, windows, open } = memo;
  return {
    async settings(orgId) {
      if (!settings.has(orgId)) settings.set(orgId, await loadSettings(trx, orgId));
      return settings.get(orgId)!;
    },
    async window(q: WindowQuery) {
      // Entries come in seq order, so a subject's window moves forward: read it once, then only what came after.
      const key = JSON.stringify([q.orgId, q.actions ?? null, q.actorUserId ?? null, q.targetId ?? null, q.ip ?? null, q.outcome ?? null]);
      const cached = windows.get(key);
      let from = cached && cached.upTo <= q.upTo ? cached.upTo : 0;
      if (from === 0) {
        // The window's first seq, from the (org_id, ts) index; the read below then goes by seq on the narrower
        // indexes (actor, target, action): a time condition there lets the engine walk the whole organisation's window.
        const lo = (await trx('audit_log').where('org_id', q.orgId).where('ts', '>=', q.since).min({ lo: 'seq' }).first()) as { lo: number | string | null } | undefined;
        from = lo?.lo === null || lo?.lo === undefined ? q.upTo : Number(lo.lo) - 1;
      }
      const rows = trx('audit_log').select(COLUMNS).where('seq', '>', from).where('seq', '<=', q.upTo);
      // With an account or a target (ids unique across organisations) the organisation is checked below, so that the
      // engine reads by the (actor_user_id, seq) or (target_id, seq) index rather than the organisation's seq range.
      const narrow = q.actorUserId !== undefined || q.targetId !== undefined;
      if (!narrow) rows.where('org_id', q.orgId);
      if (q.actions !== undefined) rows.whereIn('action', [...q.actions]);
      if (q.actorUserId !== undefined) rows.where('actor_user_id', q.actorUserId);
      if (q.targetId !== undefined) rows.where('target_id', q.targetId);
      if (q.ip !== undefined) rows.where('ip', q.ip);
      if (q.outcome !== undefined) rows.where('outcome', q.outcome);
      const fresh = ((await rows.orderBy('seq', 'asc').limit(WINDOW_MAX)) as AuditRow[]).map(toRuleEntry).filter((r) => r.orgId === q.orgId);
      // Entries a minute older than the window go (ts follows seq only roughly: appends of one commit share a moment).
      const kept = [...(cached && cached.upTo <= q.upTo ? cached.rows.filter((r) => r.ts >= q.since - 60_000) : []), ...fresh].slice(-WINDOW_MAX);
      windows.set(key, { upTo: q.upTo, rows: kept });
      return kept.filter((r) => r.ts >= q.since);
    },
    async roleOf(userId) {
      if (!roles.has(userId)) roles.set(userId, ((await trx('users').where({ id: userId }).first('role')) as { role: OrgRole } | undefined)?.role ?? null);
      return roles.get(userId)!;
    },
    async sawNetwork(deviceId, network, ts) {
      let known = networks.get(deviceId);
      if (!known) {
        known = new Set(((await trx('incident_networks').where({ device_id: deviceId }).select('network')) as { network: string }[]).map((r) => r.network));
        networks.set(deviceId, known);
      }
      if (known.has(network)) return 'known';
      await trx('incident_networks').insert({ device_id: deviceId, network, first_seen: ts });
      known.add(network);
      return known.size === 1 ? 'first' : 'new';
    },
    async isOpen(orgId, rule, subject) {
      // Remembered for the round: true until the round ends (an incident closed meanwhile is caught by feedOnly),
      // false until markOpen (or until openOrFeed finds that another evaluator opened one).
      const key = `${orgId} ${rule} ${subject}`;
      if (!open.has(key)) open.set(key, (await openIncidentId(trx, orgId, rule, subject)) !== null);
      return open.get(key)!;
    },
    markOpen(m) {
      open.set(`${m.orgId} ${m.rule} ${m.subject}`, true);
    },
  };
}

export class IncidentWatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly now: () => number;
  private readonly memo = new RoundMemo();

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
    // Answers stay valid for the round, from batch to batch (a match that only feeds an incident closed meanwhile opens
    // nothing: RuleMatch.feedOnly); the windows for the watcher's life (the trail only grows).
    const memo = this.memo.nextRound();
    for (;;) {
      const r = await this.db.transaction((trx) => this.evaluateBatch(trx, memo));
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

  private async evaluateBatch(trx: Tx, memo: RoundMemo): Promise<{ opened: number; more: boolean }> {
    if (!(await this.lock(trx))) return { opened: 0, more: false };
    const cursor = Number(((await trx('incident_cursor').where({ id: 1 }).first('seq')) as { seq: number | string }).seq);
    const batch = this.options.batch ?? 200;
    const rows = (await trx('audit_log').select(COLUMNS).where('seq', '>', cursor).orderBy('seq', 'asc').limit(batch)) as AuditRow[];
    if (rows.length === 0) return { opened: 0, more: false };
    const ctx = ruleContext(trx, memo);
    let opened = 0;
    for (const row of rows) {
      for (const m of await evaluate(toRuleEntry(row), ctx)) {
        const fed = await openOrFeed(trx, this.audit, m, this.now());
        if (fed.opened) opened++;
        if (fed.incidentId) ctx.markOpen(m);
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
