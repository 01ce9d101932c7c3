// Preload that profiles a Node process with the built-in inspector and writes the V8 profile when it exits, for
// processes whose NODE_OPTIONS cannot carry --cpu-prof (Node 20 refuses it there). Used by scripts/bench/sync.ts:
//   KLUIS_SYNC_SERVER_NODE_OPTIONS="--import $PWD/scripts/bench/lib/cpu-profile.mjs" KLUIS_CPU_PROFILE_DIR=/tmp/prof \
//     npx tsx scripts/bench/sync.ts ...
// writes /tmp/prof/<pid>.cpuprofile when the server stops (without KLUIS_CPU_PROFILE_DIR: in its working directory);
// `node scripts/bench/lib/cpu-profile-top.mjs FILE` lists where its CPU went. The in-process inspector session
// answers synchronously, so the 'exit' handler can save the profile.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

const dir = process.env.KLUIS_CPU_PROFILE_DIR ?? '.';
const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.start');
process.on('exit', () => {
  session.post('Profiler.stop', (err, result) => {
    if (err) return;
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `${process.pid}.cpuprofile`), JSON.stringify(result.profile));
  });
});
