#!/usr/bin/env node
// npm bin of @kluis/desktop: a committed shim, so `npm install` can link it before the first build exists.
let cli;
try {
  cli = await import('../dist/cli/kluis.mjs'); // dist/cli/main.js and its imports in one file (scripts/build-cli.mjs)
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  console.error('kluis: not built yet: run `npm run build` (or `npm start`) in the repository first');
  process.exit(1);
}
// Every command: the same program a direct run of the CLI builds (fullProgram), never a subset.
process.exitCode = await cli.run(cli.fullProgram(), process.argv.slice(2));
