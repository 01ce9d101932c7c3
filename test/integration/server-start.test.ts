import test from 'ava';
import { startServer, runServerExpectingExit } from '../helpers/server.js';

test('server: starts on a free port, answers /healthz with strict security headers, stops on SIGTERM', async (t) => {
  const srv = await startServer();
  try {
    const res = await fetch(`${srv.url}/healthz`);
    t.is(res.status, 200);
    t.deepEqual(await res.json(), { status: 'ok' });
    t.is(res.headers.get('content-security-policy')?.includes("default-src 'none'"), true);
    t.is(res.headers.get('x-frame-options'), 'DENY');
    t.is(res.headers.get('x-content-type-options'), 'nosniff');
    t.is(res.headers.get('cache-control'), 'no-store');
    const ready = await fetch(`${srv.url}/readyz`);
    t.is(ready.status, 200);
  } finally {
    t.is(await srv.stop(), 0, 'graceful exit code');
  }
});

test('server: unknown endpoints answer 404 with the JSON error shape', async (t) => {
  const srv = await startServer();
  try {
    const res = await fetch(`${srv.url}/api/v1/no-such-thing`, { method: 'POST' });
    t.is(res.status, 404);
    t.deepEqual(await res.json(), { error: { code: 'not_found', message: 'no such endpoint' } });
  } finally {
    await srv.stop();
  }
});

test('server: a wrong configuration value stops it with one clear line naming the variable', async (t) => {
  for (const [env, name] of [
    [{ KLUIS_PORT: 'eighty' }, 'KLUIS_PORT'],
    [{ KLUIS_ENV: 'staging' }, 'KLUIS_ENV'],
    [{ KLUIS_STORAGE: 'minio' }, 'KLUIS_S3_ENDPOINT'],
    // Production's refusals list every problem at once: environments.test.ts.
  ] as const) {
    const { code, output } = await runServerExpectingExit(env);
    t.is(code, 2, JSON.stringify(env));
    const lines = output.trim().split('\n');
    t.is(lines.length, 1, output);
    t.regex(lines[0]!, new RegExp(`^kluis-server: configuration error: ${name}`));
  }
});
