// The architecture rules are enforced by ESLint (eslint.config.js); these tests prove each rule fires.
import test from 'ava';
import { ESLint } from 'eslint';
import { repoRoot } from '../helpers/server.js';

const eslint = new ESLint({ cwd: repoRoot });

async function errors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.filter((m) => m.severity === 2).map((m) => `${m.ruleId}: ${m.message}`);
}

const forbidden: [string, string, RegExp][] = [
  ['shared/src/x.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;", /no Node builtins/],
  ['shared/src/x.ts', "import path from 'path';\nexport const x = path;", /no Node builtins/],
  ['shared/src/crypto/x.ts', "import { createHash } from 'node:crypto';\nexport const x = createHash;", /no Node builtins/],
  ['shared/src/x.ts', "import { app } from 'electron';\nexport const x = app;", /never imports electron/],
  ['shared/src/x.ts', 'export const t = document.title;', /no DOM, no Node/],
  ['shared/src/x.ts', 'export const w = window.location;', /no DOM, no Node/],
  ['shared/src/x.ts', 'export const p = process.env;', /no DOM, no Node/],
  ['shared/src/x.ts', "export const b = Buffer.from('x');", /no DOM, no Node/],
  ['shared/src/chunking/x.ts', "import sodium from 'libsodium-wrappers-sumo';\nexport const s = sodium;", /Only shared\/src\/crypto/],
  ['shared/src/x.ts', "import { x } from '../../server/src/app.js';\nexport const y = x;", /imports nothing from server/],
  ['server/src/x.ts', "import sodium from 'libsodium-wrappers-sumo';\nexport const s = sodium;", /Only shared\/src\/crypto/],
  ['server/src/x.ts', "import { x } from '@kluis/desktop';\nexport const y = x;", /server\/ never imports desktop/],
  ['server/src/x.ts', "import { x } from '../../shared/src/index.js';\nexport const y = x;", /Import @kluis\/shared/],
  ['desktop/src/x.ts', "import { x } from '@kluis/server/app';\nexport const y = x;", /desktop\/ never imports server/],
  ['desktop/src/sync/engine.ts', "import { app } from 'electron';\nexport const a = app;", /Only desktop\/src\/electron/],
  ['test/unit/x.ts', "import sodium from 'libsodium-wrappers';\nexport const s = sodium;", /Only shared\/src\/crypto/],
  ['desktop/src/x.ts', "import sodium from 'sodium-native';\nexport const s = sodium;", /Only shared\/src\/crypto/],
  ['scripts/bench/x.ts', "import sodium from 'sodium-native';\nexport const s = sodium;", /Only shared\/src\/crypto/],
  ['test/storage-reader/x.ts', "import { openManifest } from '@kluis/shared';\nexport const o = openManifest;", /no Kluis code/],
  ['test/storage-reader/x.ts', "import { x } from '../../server/src/storage/chunks.js';\nexport const y = x;", /no Kluis code/],
];

for (const [file, code, message] of forbidden) {
  test(`lint refuses in ${file}: ${code.split('\n')[0]}`, async (t) => {
    const found = await errors(file, code);
    t.true(found.some((m) => message.test(m)), found.join('\n') || 'no error reported');
  });
}

test('lint allows what the architecture allows', async (t) => {
  t.deepEqual(await errors('shared/src/crypto/x.ts', "import sodium from 'libsodium-wrappers-sumo';\nexport const s = sodium;"), []);
  t.deepEqual(await errors('desktop/src/electron/main.ts', "import { app } from 'electron';\nexport const a = app;"), []);
  t.deepEqual(await errors('server/src/x.ts', "import { readFileSync } from 'node:fs';\nimport { ErrorCode } from '@kluis/shared';\nexport const x = [readFileSync, ErrorCode];"), []);
  t.deepEqual(await errors('shared/src/x.ts', "export const e = new TextEncoder().encode('x');"), []);
  t.deepEqual(await errors('test/storage-reader/x.ts', "import sodium from 'libsodium-wrappers-sumo';\nexport const s = sodium;"), []);
});

test('the whole tree lints clean (npm run lint)', async (t) => {
  const results = await eslint.lintFiles(['.']);
  const problems = results.flatMap((r) => r.messages.filter((m) => m.severity === 2).map((m) => `${r.filePath}:${m.line} ${m.ruleId}: ${m.message}`));
  t.deepEqual(problems, []);
});
