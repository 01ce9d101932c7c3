// Prometheus metrics (prom-client), one registry per app so tests can run several apps in one process.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, Next } from 'koa';
import { Counter, Histogram, Registry, collectDefaultMetrics, Gauge } from 'prom-client';
import type { StatementCounts } from './db/statement-count.js';

export interface Metrics {
  registry: Registry;
  middleware: (ctx: Context, next: Next) => Promise<void>;
  sseClients: Gauge;
}

export function createMetrics(statements?: StatementCounts): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'kluis_' });
  if (statements) {
    const seen: StatementCounts = { write: 0, read: 0, hot: 0 };
    new Counter({
      name: 'kluis_db_statements_total', help: 'SQL statements sent, by pool (write: transactions, read: read pool, hot: prepared hot reads)', labelNames: ['pool'], registers: [registry],
      collect() {
        for (const pool of ['write', 'read', 'hot'] as const) {
          this.inc({ pool }, statements[pool] - seen[pool]);
          seen[pool] = statements[pool];
        }
      },
    });
  }
  const requests = new Counter({ name: 'kluis_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const duration = new Histogram({
    name: 'kluis_http_request_duration_seconds', help: 'HTTP request latency by route', labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers: [registry],
  });
  const sseClients = new Gauge({ name: 'kluis_sse_clients', help: 'Connected event-stream clients', registers: [registry] });
  return {
    registry,
    sseClients,
    async middleware(ctx, next) {
      const end = duration.startTimer();
      try {
        await next();
      } finally {
        // The route template, never the concrete path (ids would explode the label set).
        const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
        end({ method: ctx.method, route });
        requests.inc({ method: ctx.method, route, status: String(ctx.status) });
      }
      // An event stream stays open after its handler returned: count it until its connection closes.
      if (ctx.status === 200 && ctx.response.is('text/event-stream') && !ctx.res.writableFinished) {
        sseClients.inc();
        ctx.res.once('close', () => sseClients.dec());
      }
    },
  };
}

/** Whether an Authorization header carries `Bearer <token>` (compared in constant time, over digests of equal length). */
export function metricsAuthorised(header: string, token: string): boolean {
  const m = /^Bearer ([\x21-\x7e]+)$/.exec(header);
  if (!m) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(m[1]!), digest(token));
}
