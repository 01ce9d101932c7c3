// Local path rules (docs/architecture.md §4: unsafe paths are refused, never written): a table for checkLocalPath and the
// portable-mode warnings, and temp-dir tests for resolveInside (no escape through `..` or symlinks).
import test from 'ava';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LocalFsError, checkLocalPath, foldCase, inspectLocalPath, resolveInside, windowsNameProblem } from '../../desktop/dist/sync/local-paths.js';

// [path, refused on linux?, refused on win32?, warns on linux in portable mode?]
const rows: [string, boolean, boolean, boolean][] = [
  ['a.txt', false, false, false],
  ['Map/Sub map/bestand één.txt', false, false, false],
  ['.hidden', false, false, false],
  ['a..b', false, false, false],
  ['', true, true, false],
  ['/etc/passwd', true, true, false],
  ['C:/Windows', false, true, true],
  ['\\\\server\\share', true, true, false],
  ['a/../b', true, true, false],
  ['..', true, true, false],
  ['./a', true, true, false],
  ['a//b', true, true, false],
  ['a/', true, true, false],
  ['a\u0000b', true, true, false],
  ['a\nb', true, true, false],
  ['tab\there', true, true, false],
  ['del\u007f', true, true, false],
  ['back\\slash', true, true, false],
  ['e\u0301.txt', true, true, false], // NFD
  ['x'.repeat(256), true, true, false],
  ['é'.repeat(128), true, true, false], // 256 bytes
  ['é'.repeat(127), false, false, false], // 254 bytes
  [`d/${'x'.repeat(255)}`, false, false, false],
  ['.kluis-tmp-abc', true, true, false],
  ['d/.kluis-tmp-abc', true, true, false],
  ['.kluis', true, true, false],
  ['d/.kluis', false, false, false],
  ['CON', false, true, true],
  ['con.txt', false, true, true],
  ['Nul.tar.gz', false, true, true],
  ['d/aux', false, true, true],
  ['COM1', false, true, true],
  ['lpt9.doc', false, true, true],
  ['COM0', false, false, false],
  ['LPT10', false, false, false],
  ['console', false, false, false],
  ['CON .txt', false, true, true],
  ['trailing.', false, true, true],
  ['trailing ', false, true, true],
  ['d./x', false, true, true],
  ['a<b', false, true, true],
  ['a>b', false, true, true],
  ['a:b', false, true, true],
  ['a"b', false, true, true],
  ['a|b', false, true, true],
  ['a?b', false, true, true],
  ['a*b', false, true, true],
];

for (const [p, linux, win, warn] of rows) {
  test(`checkLocalPath: ${JSON.stringify(p).slice(0, 40)}${p.length > 40 ? ` (${p.length} chars)` : ""}`, (t) => {
    t.is(checkLocalPath(p, 'linux') !== null, linux, `linux: ${checkLocalPath(p, 'linux')}`);
    t.is(checkLocalPath(p, 'darwin') !== null, linux, 'darwin follows the POSIX rules');
    t.is(checkLocalPath(p, 'win32') !== null, win, `win32: ${checkLocalPath(p, 'win32')}`);
    const v = inspectLocalPath(p, 'linux');
    t.is(v.warning !== null, warn, `portable warning: ${v.warning}`);
    t.is(inspectLocalPath(p, 'linux', { portable: false }).warning, null, 'portable: false never warns');
    if (win) t.is(inspectLocalPath(p, 'win32').warning, null, 'on win32 it is a refusal, not a warning');
  });
}

test('windowsNameProblem and foldCase', (t) => {
  t.regex(windowsNameProblem('aux.c')!, /reserved device name/);
  t.is(windowsNameProblem('auxiliary.c'), null);
  t.is(foldCase('Map/E\u0301N.TXT'), 'map/én.txt');
});

async function tempRoot(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kluis-paths-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return root;
}

test('resolveInside: returns the absolute path inside the root, even for parents that do not exist yet', async (t) => {
  const root = await tempRoot(t);
  await mkdir(path.join(root, 'a'));
  t.is(await resolveInside(root, 'a/b.txt', 'linux'), path.join(root, 'a', 'b.txt'));
  t.is(await resolveInside(root, 'new/deeper/c.txt', 'linux'), path.join(root, 'new', 'deeper', 'c.txt'));
});

test('resolveInside: refuses .., absolute paths and unsafe names', async (t) => {
  const root = await tempRoot(t);
  for (const bad of ['../x', 'a/../../x', '/etc/passwd', '', 'a//b', 'x\u0000']) {
    const err = await t.throwsAsync(resolveInside(root, bad, 'linux'), { instanceOf: LocalFsError });
    t.is(err?.code, 'unsafe_path');
  }
  await t.throwsAsync(resolveInside(root, 'CON', 'win32'), { instanceOf: LocalFsError });
});

test('resolveInside: refuses to go through a symlinked folder or through a file', async (t) => {
  const root = await tempRoot(t);
  const outside = await tempRoot(t);
  await symlink(outside, path.join(root, 'link'));
  const err = await t.throwsAsync(resolveInside(root, 'link/x.txt', 'linux'), { instanceOf: LocalFsError });
  t.regex(err!.message, /symlink/);
  await mkdir(path.join(root, 'd'));
  await symlink(outside, path.join(root, 'd', 'inner'));
  await t.throwsAsync(resolveInside(root, 'd/inner/deep/x.txt', 'linux'), { instanceOf: LocalFsError });
  await writeFile(path.join(root, 'file'), 'x');
  const err2 = await t.throwsAsync(resolveInside(root, 'file/x.txt', 'linux'), { instanceOf: LocalFsError });
  t.regex(err2!.message, /not a folder/);
  // The target itself may be a symlink: writers replace it, they do not follow it.
  t.is(await resolveInside(root, 'link', 'linux'), path.join(root, 'link'));
});

test('resolveInside: a symlinked root is the user\'s choice and is allowed', async (t) => {
  const real = await tempRoot(t);
  const holder = await tempRoot(t);
  const root = path.join(holder, 'root');
  await symlink(real, root);
  t.is(await resolveInside(root, 'a.txt', 'linux'), path.join(root, 'a.txt'));
});
