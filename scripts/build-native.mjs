#!/usr/bin/env node
// postinstall: makes sure sqlite3's native binding exists, without needing to download anything but prebuilt
// binaries. package.json's allowScripts denies sqlite3's own install script ("prebuild-install || node-gyp
// rebuild"), because on a machine that cannot reach nodejs.org that fallback stops `npm install`: node-gyp
// downloads Node's headers unless it is told where they are. This script runs the same two steps, but points
// node-gyp at the headers of the running Node when they are installed beside it (/usr/include/node for Debian's
// and NodeSource's packages, <prefix>/include/node for the official tarballs, nvm and Homebrew), so the build
// works offline. npm versions without allowScripts run sqlite3's script themselves; this one then finds the
// binding and does nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

function log(message) {
  console.log(`build-native: ${message}`);
}

/** Loads the binding in a child process (a failed dlopen must not take this process down). */
function bindingLoads(dir) {
  const r = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', dir], { stdio: 'ignore' });
  return r.status === 0;
}

/** The directory holding include/node for this very Node version, or null. */
export function localNodeDir(env = process.env, execPath = process.execPath, version = process.versions.node) {
  const candidates = [];
  if (env.npm_config_nodedir) candidates.push(env.npm_config_nodedir);
  candidates.push(path.resolve(path.dirname(execPath), '..'));
  for (const dir of candidates) {
    const header = path.join(dir, 'include', 'node', 'node_version.h');
    if (!existsSync(header) || !existsSync(path.join(dir, 'include', 'node', 'common.gypi'))) continue;
    const text = readFileSync(header, 'utf8');
    const part = (name) => new RegExp(`#define\\s+NODE_${name}_VERSION\\s+(\\d+)`).exec(text)?.[1];
    if ([part('MAJOR'), part('MINOR'), part('PATCH')].join('.') === version) return dir;
  }
  return null;
}

function run(label, args, cwd) {
  log(label);
  const r = spawnSync(process.execPath, args, { cwd, stdio: 'inherit', env: process.env });
  return r.status === 0;
}

function main() {
  let pkgDir;
  try {
    pkgDir = path.dirname(require.resolve('sqlite3/package.json'));
  } catch {
    log('sqlite3 is not installed here; nothing to build');
    return 0;
  }
  if (bindingLoads(pkgDir)) {
    log('sqlite3 binding present');
    return 0;
  }
  const prebuild = (() => {
    try {
      return require.resolve('prebuild-install/bin.js', { paths: [pkgDir] });
    } catch {
      return null;
    }
  })();
  if (prebuild && !process.env.npm_config_build_from_source && run('sqlite3: trying a prebuilt binary', [prebuild, '-r', 'napi'], pkgDir) && bindingLoads(pkgDir)) {
    return 0;
  }
  const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [pkgDir] });
  const nodedir = localNodeDir();
  const args = [gyp, 'rebuild'];
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const how = nodedir ? `against the headers in ${path.join(nodedir, 'include', 'node')}` : "after downloading Node's headers";
  if (run(`sqlite3: building from source ${how}`, args, pkgDir) && bindingLoads(pkgDir)) return 0;
  console.error(
    'build-native: sqlite3 could not be built. It needs python3, make and a C++ compiler, and either Node\'s headers\n' +
      '  installed beside node (Debian: they come with the nodejs package in /usr/include/node) or access to nodejs.org.\n' +
      '  Set npm_config_nodedir to a directory holding include/node to point at other headers.',
  );
  return 1;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(main());
