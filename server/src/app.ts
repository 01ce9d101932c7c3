// The Koa application, built from its dependencies (no listening here: see main.ts).
import Koa from 'koa';
import Router from '@koa/router';
import helmet from 'koa-helmet';
import type { Logger } from 'pino';
import { errorMiddleware } from './errors.js';
import { ErrorCode } from '@kluis/shared';
import type { Config } from './config.js';

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

export interface AppDeps {
  config: Config;
  log: Logger;
  /** What /readyz asks (database, blob store); each throws when not ready. */
  readiness?: ReadinessCheck[];
  version?: string;
}

/** The server's HTTP application. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa({ proxy: false });
  const router = new Router();

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const results: Record<string, string> = {};
    let ready = true;
    for (const r of deps.readiness ?? []) {
      try {
        await r.check();
        results[r.name] = 'ok';
      } catch {
        ready = false;
        results[r.name] = 'unavailable';
      }
    }
    if (!ready) {
      ctx.status = 503;
      ctx.body = { error: { code: ErrorCode.Unavailable, message: 'not ready' }, checks: results };
      return;
    }
    ctx.body = { status: 'ok', checks: results };
  });

  router.get('/api/v1/info', (ctx) => {
    ctx.body = { name: 'kluis', version: deps.version ?? '0.1.0', env: deps.config.env, apiVersion: 1 };
  });

  app.use(errorMiddleware(deps.log));
  app.use(
    helmet({
      // The API serves JSON only: nothing may load or frame it. Pages set their own, equally strict, policy.
      contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] } },
      frameguard: { action: 'deny' },
      crossOriginResourcePolicy: { policy: 'same-origin' },
      referrerPolicy: { policy: 'no-referrer' },
      hsts: deps.config.env === 'production',
    }),
  );
  app.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));
  return app;
}
