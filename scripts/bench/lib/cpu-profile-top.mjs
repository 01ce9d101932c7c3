// Where the CPU of a V8 profile went: self time per function, the top N (default 25), with its share of the
// sampled time ("(idle)" is the event loop waiting). Profiles of the main thread only: threads of libuv's pool
// (sqlite3 queries, file reads) and the GC's helpers are not in it, though the process's CPU seconds count them.
//   node scripts/bench/lib/cpu-profile-top.mjs FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';

const [file, count = '25'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node cpu-profile-top.mjs FILE.cpuprofile [N]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const selfMicros = new Map();
profile.samples.forEach((id, i) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const byFunction = new Map();
let total = 0;
for (const node of profile.nodes) {
  const micros = selfMicros.get(node.id) ?? 0;
  total += micros;
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url ? ` ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(server|shared|desktop)\/dist\//, '$1/dist/')}:${lineNumber + 1}` : '';
  const key = `${functionName || '(anonymous)'}${where}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
}
console.log(`${(total / 1e6).toFixed(2)} s sampled`);
for (const [key, micros] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(count))) {
  console.log(`${(micros / 1e6).toFixed(2).padStart(8)} s ${((100 * micros) / total).toFixed(1).padStart(5)} %  ${key}`);
}
