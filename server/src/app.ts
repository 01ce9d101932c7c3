// The Koa application, built from its services (no listening here: see main.ts).
import Koa from 'koa';
import Router from '@koa/router';
import helmet from 'koa-helmet';
import { ErrorCode } from '@kluis/shared';
import { errorMiddleware } from './errors.js';
import { DomainError } from './domain-error.js';
import { jsonBodies } from './body.js';
import type { KluisState, Services } from './context.js';
import { createMetrics, metricsAuthorised } from './metrics.js';
import { authRoutes, kdfFloor } from './routes/auth.js';
import { recoveryRoutes } from './routes/recovery.js';
import { orgRoutes } from './routes/orgs.js';
import { spaceRoutes } from './routes/spaces.js';
import { commitRoutes } from './routes/commits.js';
import { auditRoutes } from './routes/audit.js';
import { auditProofRoutes } from './routes/audit-proofs.js';
import { chunkRoutes } from './routes/chunks.js';
import { policyRoutes } from './routes/policy.js';
import { linkRoutes } from './routes/links.js';
import { fileShareRoutes } from './routes/file-shares.js';
import { deviceRoutes } from './routes/devices.js';
import { webRoutes } from './routes/web.js';
import { domainRoutes } from './routes/domains.js';
import { peopleRoutes } from './routes/people.js';
import { adminRoutes } from './routes/admins.js';
import { requestRoutes } from './routes/requests.js';
import { totpRoutes } from './routes/totp.js';
import { adminViewRoutes } from './routes/admin-views.js';
import { incidentRoutes } from './routes/incidents.js';
import { clientAddressResolver } from './client-address.js';

export interface AppOptions {
  /** 32-byte secret for prelogin's fake salts (kept in the data directory). */
  serverSecret: Uint8Array;
  /** 32-byte key that seals TOTP secrets (server subkey 2; docs/crypto.md §12). */
  totpKey: Uint8Array;
  version?: string;
  /** Extra route registrations (chunk storage is mounted here by main.ts). */
  mount?: ((router: Router, services: Services) => void)[];
}

export { JSON_LIMIT, COMMIT_JSON_LIMIT, CHUNK_IDS_JSON_LIMIT } from './body.js';

/** The server's HTTP application. */
export function createApp(services: Services, options: AppOptions): Koa {
  const { config, log } = services;
  const app = new Koa({ proxy: false });
  const router = new Router();
  const metrics = createMetrics(services.statements);
  const clientAddress = clientAddressResolver(config.trustedProxies ?? []);

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const checks: Record<string, string> = {};
    const probe = async (name: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
        checks[name] = 'ok';
      } catch {
        checks[name] = 'unavailable';
      }
    };
    await Promise.all([probe('database', () => services.db.raw('select 1')), probe('blobstore', () => services.blobs.ready())]);
    if (Object.values(checks).some((v) => v !== 'ok')) {
      ctx.status = 503;
      ctx.body = { error: { code: ErrorCode.Unavailable, message: 'not ready' }, checks };
      return;
    }
    ctx.body = { status: 'ok', checks };
  });

  router.get('/metrics', async (ctx) => {
    // With KLUIS_METRICS_TOKEN (required in production), only a scraper holding it reads the figures.
    if (config.metricsToken !== undefined && !metricsAuthorised(ctx.get('authorization'), config.metricsToken)) {
      ctx.set('WWW-Authenticate', 'Bearer realm="kluis-metrics"');
      throw new DomainError(ErrorCode.Unauthenticated, '/metrics needs its bearer token (KLUIS_METRICS_TOKEN)');
    }
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });

  router.get('/api/v1/info', (ctx) => {
    const floor = kdfFloor(services);
    ctx.body = { name: 'kluis', version: options.version ?? '0.1.0', env: config.env, apiVersion: 1, kdf: { opsLimit: floor.opsLimit, memLimit: floor.memLimit }, auditPublicKey: services.audit.publicKey };
  });

  authRoutes(router, services, options.serverSecret);
  recoveryRoutes(router, services, options.serverSecret);
  orgRoutes(router, services);
  spaceRoutes(router, services);
  commitRoutes(router, services);
  auditRoutes(router, services);
  auditProofRoutes(router, services);
  chunkRoutes(router, services, services.chunks);
  policyRoutes(router, services);
  linkRoutes(router, services);
  fileShareRoutes(router, services);
  deviceRoutes(router, services);
  requestRoutes(router, services);
  webRoutes(router, services);
  domainRoutes(router, services);
  peopleRoutes(router, services);
  totpRoutes(router, services, options.totpKey);
  adminRoutes(router, services);
  adminViewRoutes(router, services);
  incidentRoutes(router, services);
  for (const mount of options.mount ?? []) mount(router, services);

  app.use(metrics.middleware);
  app.use(errorMiddleware(log, services.audit));
  app.use(
    helmet({
      // The API serves JSON only: nothing may load or frame it. Pages set their own, equally strict, policy.
      contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] } },
      frameguard: { action: 'deny' },
      crossOriginResourcePolicy: { policy: 'same-origin' },
      referrerPolicy: { policy: 'no-referrer' },
      hsts: config.env === 'production',
    }),
  );
  app.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    const client = ctx.get('x-kluis-client');
    const ua = ctx.get('user-agent');
    (ctx.state as KluisState).meta = {
      // Koa's ctx.ip (proxy off) is the TCP peer; behind trusted proxies the forwarded client (client-address.ts).
      ip: clientAddress(ctx.req),
      userAgent: ua ? ua.slice(0, 300) : null,
      client: client && /^[\x20-\x7e]{1,100}$/.test(client) ? client : null,
    };
    await next();
  });
  app.use(jsonBodies());
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));
  // Koa reports here what fails after errorMiddleware is done: the connection or a streamed answer (a download whose
  // store read fails midway). Its default prints to stderr; a client that hung up mid-request (the HTTP parser's
  // "Parse Error", Node's "aborted", a write to a closed socket) is routine, the rest is worth an error line.
  app.on('error', (err: { code?: unknown; message?: unknown }) => {
    const code = String(err.code);
    const clientGone = err.message === 'Parse Error' || code.startsWith('HPE_') || (code === 'ECONNRESET' && err.message === 'aborted') || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE';
    if (clientGone) log.debug({ err }, 'connection closed by the client');
    else log.error({ err }, 'response failed');
  });
  return app;
}
