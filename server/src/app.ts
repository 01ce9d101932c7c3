// The Koa application, built from its services (no listening here: see main.ts).
import Koa from 'koa';
import Router from '@koa/router';
import helmet from 'koa-helmet';
import { bodyParser } from '@koa/bodyparser';
import { ErrorCode } from '@kluis/shared';
import { errorMiddleware } from './errors.js';
import type { KluisState, Services } from './context.js';
import { createMetrics } from './metrics.js';
import { authRoutes, kdfFloor } from './routes/auth.js';
import { recoveryRoutes } from './routes/recovery.js';
import { orgRoutes } from './routes/orgs.js';
import { spaceRoutes } from './routes/spaces.js';
import { commitRoutes } from './routes/commits.js';
import { auditRoutes } from './routes/audit.js';
import { chunkRoutes } from './routes/chunks.js';

export interface AppOptions {
  /** 32-byte secret for prelogin's fake salts (kept in the data directory). */
  serverSecret: Uint8Array;
  version?: string;
  /** Extra route registrations (chunk storage is mounted here by main.ts). */
  mount?: ((router: Router, services: Services) => void)[];
}

/** JSON bodies: small everywhere, larger for batch commits (hundreds of versions with their manifests). */
export const JSON_LIMIT = '256kb';
export const COMMIT_JSON_LIMIT = '32mb';

/** The server's HTTP application. */
export function createApp(services: Services, options: AppOptions): Koa {
  const { config, log } = services;
  const app = new Koa({ proxy: false });
  const router = new Router();
  const metrics = createMetrics();

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
  chunkRoutes(router, services, services.chunks);
  for (const mount of options.mount ?? []) mount(router, services);

  const smallJson = bodyParser({ enableTypes: ['json'], jsonLimit: JSON_LIMIT, encoding: 'utf-8', parsedMethods: ['POST', 'PUT', 'PATCH', 'DELETE'] });
  const bigJson = bodyParser({ enableTypes: ['json'], jsonLimit: COMMIT_JSON_LIMIT, encoding: 'utf-8' });

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
      ip: ctx.ip,
      userAgent: ua ? ua.slice(0, 300) : null,
      client: client && /^[\x20-\x7e]{1,100}$/.test(client) ? client : null,
    };
    await next();
  });
  app.use((ctx, next) => (ctx.path.endsWith('/commits') ? bigJson(ctx, next) : smallJson(ctx, next)));
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));
  return app;
}
