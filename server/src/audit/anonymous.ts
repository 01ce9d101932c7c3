// Auditing requests that have no authenticated caller (no session or a bad one, prelogin, failed logins, unknown
// endpoints) without one row per request. Anyone can send these, so a flood must neither fill the disk nor hide:
//
// - Occurrences are grouped by key (action, outcome, ip, HTTP status, error code) in fixed windows of `windowMs`
//   aligned to the epoch (window w holds the times w·windowMs <= ts < (w+1)·windowMs).
// - The first occurrence of a key in a window is written in full, at once (the request waits for it, as for any
//   entry). The key does not depend on the account asked about, so neither does the time this takes.
// - A later occurrence that the route attributed to an organisation (a failed login or a revoked session of a
//   known account: its auditors need each one) is still written in full, but in the background, at most
//   `maxAttributed` per window: the request does not wait, so a known account is not told from an unknown one by
//   the time the answer takes.
// - Every other later occurrence is only counted, per organisation. When the window has passed, one summary entry
//   per (key, organisation) is written with the same action, outcome and ip, no actor and no target, and details
//   {aggregated: true, count, firstAt, lastAt, windowMs, status, code}: `count` occurrences between firstAt and
//   lastAt that have no row of their own. So the occurrences of a window add up as
//   (rows without details.aggregated) + Σ details.count.
// - Memory and rows are bounded: at most `maxKeys` keys per window; a new key beyond that is counted under
//   (action, outcome, status, code) with no ip (details.overflow: true), and at most `maxOrgsPerKey`
//   organisations per key (the rest are counted under no organisation). Actions, statuses and codes are the
//   server's constants, so the merged keys are few; per window that is at most
//   (maxKeys + merged keys) × (1 + maxOrgsPerKey) + maxAttributed rows, whatever the request rate.
//
// A crash loses the counts of the current window and background rows not yet written (never a first occurrence).
// stop() writes them at shutdown.
import type { CanonicalValue } from '@kluis/shared';
import type { AuditEntryInput, AuditOutcome } from './types.js';

export interface AnonymousAuditOptions {
  /** Length of a counting window (default 60 000 ms). */
  windowMs?: number;
  /** Most distinct keys counted per window before new keys are merged per (action, outcome, status) (default 1000). */
  maxKeys?: number;
  /** Most organisations counted apart per key (default 16). */
  maxOrgsPerKey?: number;
  /** Most later occurrences attributed to an organisation written in full per window (default 1000). */
  maxAttributed?: number;
  /** Clock in ms since 1970 UTC (default Date.now). */
  now?: () => number;
  /** Called with errors of writing summaries (default console.error). */
  onError?: (err: unknown) => void;
}

interface OrgCount {
  count: number;
  firstAt: number;
  lastAt: number;
}

interface Bucket {
  action: string;
  outcome: AuditOutcome;
  ip: string | null;
  status: number | null;
  code: string | null;
  overflow: boolean;
  /** Occurrences after the first, per organisation (null: none) */
  orgs: Map<string | null, OrgCount>;
}

export class AnonymousAuditGate {
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private readonly maxOrgsPerKey: number;
  private readonly maxAttributed: number;
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;
  private window = Number.NaN;
  private buckets = new Map<string, Bucket>();
  /** Attributed occurrences written in full this window, and those waiting for their background write. */
  private attributed = 0;
  private pending: AuditEntryInput[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly writing = new Set<Promise<void>>();

  constructor(
    /** Writes one full entry (a first occurrence). */
    private readonly writeOne: (entry: AuditEntryInput) => Promise<unknown>,
    /** Writes the summaries of a window, all or nothing. */
    private readonly writeMany: (entries: AuditEntryInput[]) => Promise<unknown>,
    options: AnonymousAuditOptions = {},
  ) {
    this.windowMs = options.windowMs ?? 60_000;
    if (!(Number.isSafeInteger(this.windowMs) && this.windowMs > 0)) throw new RangeError('windowMs: a positive integer');
    this.maxKeys = options.maxKeys ?? 1000;
    this.maxOrgsPerKey = options.maxOrgsPerKey ?? 16;
    this.maxAttributed = options.maxAttributed ?? 1000;
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? ((err) => console.error('audit summary failed:', err));
  }

  /** Writes the entry in full if it is the first of its key in this window, else counts it. */
  async record(entry: AuditEntryInput): Promise<void> {
    const now = this.now();
    this.roll(now);
    const details = entry.details ?? {};
    const status = typeof details.status === 'number' ? details.status : null;
    const code = typeof details.code === 'string' ? details.code : null;
    const ip = entry.ip ?? null;
    let key = JSON.stringify([entry.action, entry.outcome, ip, status, code]);
    let bucket = this.buckets.get(key);
    let overflow = false;
    if (!bucket && this.buckets.size >= this.maxKeys) {
      overflow = true;
      // Actions and statuses are the server's own constants, so there are only so many merged keys.
      key = JSON.stringify(['overflow', entry.action, entry.outcome, status, code]);
      bucket = this.buckets.get(key);
    }
    if (!bucket) {
      // Registered before the write, so that concurrent occurrences are counted rather than written too.
      this.buckets.set(key, { action: entry.action, outcome: entry.outcome, ip: overflow ? null : ip, status, code, overflow, orgs: new Map() });
      this.ensureTimer();
      await this.writeOne(overflow ? { ...entry, details: { ...details, overflow: true } } : entry);
      return;
    }
    let org: string | null = entry.orgId ?? null;
    if (org !== null && this.attributed < this.maxAttributed) {
      this.attributed++;
      if (this.pending.push(entry) === 1) setImmediate(() => this.writePending());
      return;
    }
    if (!bucket.orgs.has(org) && bucket.orgs.size >= this.maxOrgsPerKey) org = null;
    const c = bucket.orgs.get(org);
    if (c) {
      c.count++;
      c.lastAt = now;
    } else {
      bucket.orgs.set(org, { count: 1, firstAt: now, lastAt: now });
    }
  }

  /** Writes the counts of the current window now (shutdown) and waits for every summary in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.writePending();
    this.flush(this.buckets);
    this.buckets = new Map();
    this.window = Number.NaN;
    while (this.writing.size) await Promise.all([...this.writing]);
  }

  /** Starts a new window when the clock has left the current one; the old window's counts are written. */
  private roll(now: number): void {
    const w = Math.floor(now / this.windowMs);
    if (w === this.window) return;
    this.window = w;
    const old = this.buckets;
    this.buckets = new Map();
    this.attributed = 0;
    this.flush(old);
  }

  /** The attributed occurrences queued since the last call, in one transaction. */
  private writePending(): void {
    const entries = this.pending;
    if (entries.length === 0) return;
    this.pending = [];
    this.track(this.writeMany(entries));
  }

  private track(write: Promise<unknown>): void {
    const p = write.then(
      () => undefined,
      (err: unknown) => this.onError(err),
    );
    this.writing.add(p);
    void p.finally(() => this.writing.delete(p));
  }

  private flush(buckets: Map<string, Bucket>): void {
    const entries: AuditEntryInput[] = [];
    for (const b of buckets.values()) {
      for (const [orgId, c] of b.orgs) {
        const details: { [key: string]: CanonicalValue } = { aggregated: true, count: c.count, firstAt: c.firstAt, lastAt: c.lastAt, windowMs: this.windowMs };
        if (b.status !== null) details.status = b.status;
        if (b.code !== null) details.code = b.code;
        if (b.overflow) details.overflow = true;
        entries.push({ orgId, actorUserId: null, actorDeviceId: null, action: b.action, targetType: null, targetId: null, outcome: b.outcome, ip: b.ip, userAgent: null, client: null, details });
      }
    }
    if (entries.length > 0) this.track(this.writeMany(entries));
  }

  /** A tick several times a window writes a passed window's counts even when no request comes to roll it. */
  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.roll(this.now());
      if (this.buckets.size === 0 && this.timer) {
        clearInterval(this.timer); // idle: restarted by the next occurrence
        this.timer = undefined;
      }
    }, Math.max(10, Math.min(15_000, Math.floor(this.windowMs / 4))));
    this.timer.unref();
  }
}
