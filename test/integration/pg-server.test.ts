// KLUIS_DATABASE_URL at start (server/src/config.ts, main.ts, admin/cli.ts): a bad value stops the server with one
// line naming the variable (exit 2), a database it cannot open with one line (exit 1), and the password in the URL
// never reaches an error, a log line or kluis-admin's output, at any log level.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { databaseEnv, repoRoot, runServerExpectingExit, startServer } from '../helpers/server.js';
import { admin, call, login, newOrg, newSpace } from '../helpers/api.js';
import { newFile, version } from '../helpers/files.js';
import { sharedPostgres } from '../helpers/postgres.js';
import { usePostgres } from '../helpers/postgres-suite.js';

usePostgres();

const run = promisify(execFile);
const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function dataDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'kluis-pgsrv-'));
  dirs.push(d);
  return d;
}

/** Every way the password can be written: as given, and as it stands in the URL. */
function secretForms(password: string): string[] {
  return [password, encodeURIComponent(password)];
}

test('a malformed or foreign KLUIS_DATABASE_URL stops the server with one line naming it, without the password', async (t) => {
  const secret = 's3cretPW';
  const cases: [string, RegExp][] = [
    [`mysql://kluis:${secret}@localhost/kluis`, /only PostgreSQL is supported.*\(got mysql:\/\/kluis:\*\*\*@localhost\/kluis\)/],
    [`postgres://kluis:${secret}@localhost`, /no database name/],
    [`postgres://kluis:${secret}@localhost/`, /no database name/],
    [`${secret} is not a url`, /not a URL.*value not shown/],
    [`postgres://kluis:${secret}@/kluis`, /not a URL/],
    [`postgres:///kluis?password=${secret}`, /no host.*password=\*\*\*/],
  ];
  for (const [url, message] of cases) {
    const { code, output } = await runServerExpectingExit({ KLUIS_DATABASE_URL: url, KLUIS_DATA_DIR: dataDir() });
    t.is(code, 2, url);
    const lines = output.trim().split('\n');
    t.is(lines.length, 1, output);
    t.regex(lines[0]!, /^kluis-server: configuration error: KLUIS_DATABASE_URL: /);
    t.regex(lines[0]!, message);
    t.false(output.includes(secret), output);
  }
});

test('a database it cannot open (wrong password, nothing listening) stops the server and kluis-admin with one line, without the password', async (t) => {
  const good = new URL((await databaseEnv(dataDir())).KLUIS_DATABASE_URL!);
  const wrong = new URL(good);
  wrong.password = encodeURIComponent('wr0ng/p@ss:word');
  const nobody = new URL(good);
  nobody.port = '1'; // nothing listens on port 1
  const secrets = [...secretForms((await sharedPostgres()).password), ...secretForms('wr0ng/p@ss:word')];
  for (const [url, reason] of [[wrong, /password authentication failed for user "kluis"/], [nobody, /ECONNREFUSED|connect/]] as const) {
    const { code, output } = await runServerExpectingExit({ KLUIS_DATABASE_URL: url.toString(), KLUIS_DATA_DIR: dataDir(), KLUIS_LOG_LEVEL: 'trace' });
    t.is(code, 1, output);
    const lines = output.trim().split('\n');
    t.is(lines.length, 1, output);
    t.regex(lines[0]!, /^kluis-server: cannot open the database postgres:\/\/kluis:\*\*\*@127\.0\.0\.1:\d+\/kluis_\w+: /);
    t.regex(lines[0]!, reason);
    for (const s of secrets) t.false(output.includes(s), output);

    const err = await run(process.execPath, [path.join(repoRoot, 'server/dist/admin/cli.js'), 'org', 'list'], {
      env: { PATH: process.env.PATH ?? '', KLUIS_DATA_DIR: dataDir(), KLUIS_DATABASE_URL: url.toString(), KLUIS_ENV: 'test' },
    }).catch((e: { code: number; stdout: string; stderr: string }) => e);
    t.is((err as { code: number }).code, 1);
    const text = `${(err as { stdout: string }).stdout}${(err as { stderr: string }).stderr}`;
    t.regex(text, /^kluis-admin: cannot open the database postgres:\/\/kluis:\*\*\*@/);
    for (const s of secrets) t.false(text.includes(s), text);
  }
});

test('a working server and kluis-admin on PostgreSQL, logging at trace, never print the password', async (t) => {
  const srv = await startServer({ KLUIS_LOG_LEVEL: 'trace' });
  let output = '';
  try {
    const { admin: a } = await newOrg(srv.url, srv.dataDir);
    t.is((await login(srv.url, a.email, 'not the password')).status, 401);
    const { spaceId, pair } = await newSpace(srv.url, a);
    const f = newFile();
    t.is((await call(srv.url, 'POST', `/api/v1/spaces/${spaceId}/commits`, { token: a.token, json: { versions: [version(a, spaceId, pair, 1, f, { parent: null }).entry] } })).status, 201);
    t.is((await call(srv.url, 'GET', `/api/v1/spaces/${spaceId}/changes`, { token: a.token })).status, 200);
    t.is((await call(srv.url, 'GET', '/api/v1/spaces/%00x/trash', { token: a.token })).status, 404);
    t.is((await call(srv.url, 'GET', '/readyz')).status, 200);
    const list = await admin(srv.dataDir, ['org', 'list']);
    t.true(JSON.stringify(list).includes(a.orgId));
    t.like(await admin(srv.dataDir, ['audit', 'verify', '--no-state']), { ok: true });
  } finally {
    t.is(await srv.stop(), 0);
    output = srv.output();
  }
  t.regex(output, /"database":"postgresql"/);
  for (const s of secretForms((await sharedPostgres()).password)) t.false(output.includes(s), 'the password in the output');
});
