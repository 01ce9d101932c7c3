// Change events across API nodes on PostgreSQL (issue 21 §3): what a node's EventBus publishes (a commit's
// {spaceId, seq}, sessions that ended, a membership that changed) is sent with NOTIFY on one channel, and every node
// LISTENs on a connection of its own and hands what the others sent to its bus. A node skips its own messages: it
// acted on them locally already.
//
// Order and loss. NOTIFY is sent after the change committed, so a node that hears of it reads the change. A node
// that registers a stream before reading the session and memberships (EventBus.openStream) either sees a revocation
// in that read or hears of it after, as on one node. Messages sent while a node's listening connection is down are
// lost to it: when that connection breaks, and again once it is back, the node ends all its open streams, so that
// their clients reconnect and read memberships and heads afresh (the client catches up from its cursor).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Db } from './db/db.js';
import type { BusMessage, EventBus } from './events.js';

const CHANNEL = 'kluis_events';
const ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A message as sent by another node, or null when it is not one (the channel is open to every role of the database). */
function parse(payload: string | undefined): (BusMessage & { o: string }) | null {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(payload ?? '') as Record<string, unknown>;
  } catch {
    return null;
  }
  if (!m || typeof m !== 'object' || typeof m.o !== 'string') return null;
  const id = (v: unknown) => typeof v === 'string' && ID.test(v);
  if (m.t === 'change' && id(m.spaceId) && Number.isSafeInteger(m.seq)) return { o: m.o, t: 'change', spaceId: m.spaceId as string, seq: m.seq as number };
  if (m.t === 'removal' && id(m.spaceId)) return { o: m.o, t: 'removal', spaceId: m.spaceId as string };
  if (m.t === 'member' && id(m.spaceId) && id(m.userId)) return { o: m.o, t: 'member', spaceId: m.spaceId as string, userId: m.userId as string };
  if (m.t === 'end' && (m.userId === undefined || id(m.userId)) && (m.deviceId === undefined || id(m.deviceId)) && (m.userId !== undefined || m.deviceId !== undefined)) {
    return { o: m.o, t: 'end', ...(m.userId !== undefined ? { userId: m.userId as string } : {}), ...(m.deviceId !== undefined ? { deviceId: m.deviceId as string } : {}) };
  }
  return null;
}

export interface EventRelay {
  /** This node's id in the messages it sends. */
  readonly node: string;
  /** Whether the listening connection is up. */
  listening(): boolean;
  close(): Promise<void>;
}

/** Connects `bus` to the other nodes on the database at `url` (sends through `db`'s pool). */
export async function startEventRelay(url: string, db: Db, bus: EventBus, log: Pick<Logger, 'warn' | 'error' | 'info'>): Promise<EventRelay> {
  const node = randomBytes(8).toString('hex');
  let client: pg.Client | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let retryMs = 250;

  const lost = (c: pg.Client, err?: unknown) => {
    if (client !== c) return;
    client = undefined;
    c.end().catch(() => {});
    if (closed) return;
    log.warn({ err }, 'event relay: lost the listening connection; ending event streams and reconnecting');
    bus.endAll();
    reconnect();
  };
  const connect = async () => {
    const c = new pg.Client({ connectionString: url, application_name: 'kluis-events', keepAlive: true });
    c.on('error', (err) => lost(c, err));
    c.on('end', () => lost(c));
    c.on('notification', (n) => {
      if (n.channel !== CHANNEL) return;
      const m = parse(n.payload);
      if (!m) return log.warn({ channel: n.channel }, 'event relay: ignored a malformed message');
      if (m.o === node) return;
      const { o: _origin, ...message } = m;
      bus.receive(message as BusMessage);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      c.removeAllListeners('end');
      await c.end().catch(() => {});
      throw err;
    }
    client = c;
    retryMs = 250;
  };
  const reconnect = () => {
    timer = setTimeout(() => {
      connect().then(() => {
        log.info({}, 'event relay: listening again');
        bus.endAll(); // streams opened meanwhile may have missed messages
      }, (err: unknown) => {
        log.error({ err }, 'event relay: cannot listen; retrying');
        retryMs = Math.min(retryMs * 2, 30_000);
        if (!closed) reconnect();
      });
    }, retryMs);
    timer.unref();
  };

  await connect();
  bus.relayTo((message) => {
    db.raw('SELECT pg_notify(?, ?)', [CHANNEL, JSON.stringify({ ...message, o: node })]).catch((err: unknown) => {
      log.error({ err }, 'event relay: could not send an event to the other nodes');
    });
  });
  return {
    node,
    listening: () => client !== undefined,
    async close() {
      closed = true;
      bus.relayTo(undefined);
      clearTimeout(timer);
      const c = client;
      client = undefined;
      await c?.end().catch(() => {});
    },
  };
}
