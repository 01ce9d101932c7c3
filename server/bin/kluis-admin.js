#!/usr/bin/env node
// npm bin of @kluis/server: a committed shim, so `npm install` can link it before the first build exists.
try {
  await import('../dist/admin/cli.js');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  console.error('kluis-admin: not built yet: run `npm run build` (or `npm start`) in the repository first');
  process.exitCode = 1;
}
