// The npm bin `kluis` (desktop/bin/kluis.js, what `npx kluis` runs) offers every command the program has: it once
// registered the sync commands only, so `npx kluis share link` was unknown while the tests (which run
// dist/cli/main.js) passed.
import test from 'ava';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/server.js';

const run = promisify(execFile);
const commandsOf = (help: string) => [...help.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]).sort();

test('npx kluis lists the same commands as the program itself, share, policy and sync among them', async (t) => {
  const env = { PATH: process.env.PATH ?? '', KLUIS_HOME: path.join(repoRoot, 'no-such-home') };
  const bin = (await run(process.execPath, [path.join(repoRoot, 'desktop/bin/kluis.js'), '--help'], { env })).stdout;
  const direct = (await run(process.execPath, [path.join(repoRoot, 'desktop/dist/cli/main.js'), '--help'], { env })).stdout;
  t.deepEqual(commandsOf(bin), commandsOf(direct));
  for (const c of ['sync', 'status', 'versions', 'restore', 'share', 'policy', 'space', 'fingerprint']) t.true(commandsOf(bin).includes(c), c);
  const share = (await run(process.execPath, [path.join(repoRoot, 'desktop/bin/kluis.js'), 'share', '--help'], { env })).stdout;
  t.true(commandsOf(share).includes('link'));
});
