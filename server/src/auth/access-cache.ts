// Caches of sessions and space memberships, exact across processes (docs/architecture.md "Caches of sessions and
// memberships"). Every request reads the cache generation (one row, migration 018) once; every transaction that changes
// sessions, users, space_members, pending_removals or deletes a space bumps it through triggers, whoever runs it (this
// node, another node, kluis-admin). An entry is used only by a request that read the same generation as the request
// that filled it, and is filled only from rows read after that generation was read. So a request that starts after a
// revocation committed reads a newer generation and reads the rows afresh: it is refused, on every node.
//
// Only what lets a request through is cached. A refusal (revoked, expired, not a member) is decided on rows read for
// that request, so a stale entry can never turn a refusal into a pass, nor an old expiry into a wrong refusal.
import type { HotReads } from '../db/hot-reads.js';

/** A session row joined with its user, as authenticate reads it (auth/sessions.ts). */
export interface CachedSession {
  deviceId: string;
  userId: string;
  orgId: string;
  role: string;
  email: string;
  signPublicKey: string;
  expiresAt: number;
  lastSeenAt: number;
}

interface Entry<T> {
  generation: number;
  value: T;
}

const GENERATION_SQL = 'SELECT n, heads FROM cache_generation WHERE id = 1';

/** The two counters a request reads: the cache generation, and the heads counter of migration 019. */
export interface Generations {
  generation: number;
  heads: number;
}

export class AccessCache {
  private generation = -1;
  private heads = -1;
  private readonly sessions = new Map<string, Entry<CachedSession>>();
  private readonly members = new Map<string, Entry<string>>();
  /** Spaces' heads (seq) under the heads counter: the same rules, with `heads` for the generation. */
  private readonly spaceHeads = new Map<string, Entry<number>>();

  /** `max` entries per map: beyond it the map starts afresh (a bound on memory, not a policy worth more). */
  constructor(
    private readonly hot: HotReads,
    private readonly max = 50_000,
  ) {}

  /** The counters' read that has been sent and not yet answered. */
  private sent: Promise<Generations> | undefined;
  /** The read to be sent once `sent` is answered, shared by every request that arrived meanwhile. */
  private queued: Promise<Generations> | undefined;

  /**
   * Reads the generation and the heads counter (the one statement a cached request makes for its access and for an
   * unchanged space's head); a new value empties the maps it guards.
   *
   * Concurrent requests share reads, but only reads sent after they arrived: a read already on its way may have been
   * answered from before a revocation that committed just before this request came in, so a request arriving while
   * one is out waits for the next, which goes out as soon as that one is answered and carries every request that came
   * in meanwhile. Under load that is one statement for many requests instead of one each, and each request still
   * reads counters at least as new as its own arrival (docs/architecture.md "Caches of sessions and memberships").
   */
  current(): Promise<Generations> {
    if (this.queued) return this.queued;
    if (!this.sent) return this.send();
    const settle = () => undefined;
    this.queued = this.sent.then(settle, settle).then(() => {
      this.queued = undefined;
      return this.send();
    });
    return this.queued;
  }

  private send(): Promise<Generations> {
    const read = this.read();
    this.sent = read;
    const done = () => {
      if (this.sent === read) this.sent = undefined;
    };
    read.then(done, done);
    return read;
  }

  private async read(): Promise<Generations> {
    const row = await this.hot.first<{ n: number | string; heads: number | string }>(GENERATION_SQL, []);
    const generation = Number(row!.n);
    const heads = Number(row!.heads);
    if (generation !== this.generation) {
      // Newer (or, after a restore of another database, different): nothing read before is trusted.
      this.generation = generation;
      this.sessions.clear();
      this.members.clear();
    }
    if (heads !== this.heads) {
      this.heads = heads;
      this.spaceHeads.clear();
    }
    return { generation, heads };
  }

  /** The space's head (its seq), if cached under the heads counter this request read. */
  head(spaceId: string, heads: number): number | undefined {
    return valid(this.spaceHeads.get(spaceId), heads);
  }

  /** Keeps a head read after `heads` was read (not kept when a newer value has been seen since). */
  putHead(spaceId: string, heads: number, head: number): void {
    if (heads !== this.heads) return;
    if (this.spaceHeads.size >= this.max) this.spaceHeads.clear();
    this.spaceHeads.set(spaceId, { generation: heads, value: head });
  }

  session(tokenHash: string, generation: number): CachedSession | undefined {
    return valid(this.sessions.get(tokenHash), generation);
  }

  putSession(tokenHash: string, generation: number, value: CachedSession): void {
    this.put(this.sessions, tokenHash, generation, value);
  }

  /** The caller's role in the space, if cached for this generation. */
  memberRole(userId: string, spaceId: string, generation: number): string | undefined {
    return valid(this.members.get(`${userId}/${spaceId}`), generation);
  }

  putMemberRole(userId: string, spaceId: string, generation: number, role: string): void {
    this.put(this.members, `${userId}/${spaceId}`, generation, role);
  }

  private put<T>(map: Map<string, Entry<T>>, key: string, generation: number, value: T): void {
    // Rows read under an older generation than the newest seen are not kept: a newer request already invalidated them.
    if (generation !== this.generation) return;
    if (map.size >= this.max) map.clear();
    map.set(key, { generation, value });
  }
}

function valid<T>(entry: Entry<T> | undefined, generation: number): T | undefined {
  return entry && entry.generation === generation ? entry.value : undefined;
}
