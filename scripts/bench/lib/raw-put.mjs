// The "raw" baseline of scripts/bench/sync.ts, in its own process so its time and peak RSS are measured like the
// other tools': every file under DIR becomes one object PREFIX/<relative path> in BUCKET, put with the `minio`
// client from a file stream with its size (multipart above the client's part size), 16 puts in flight.
// Plain JS (no tsx loader in the measured process).
//   S3_ENDPOINT=http://127.0.0.1:PORT S3_ACCESS_KEY=.. S3_SECRET_KEY=.. node raw-put.mjs DIR BUCKET PREFIX
// Prints {"files":n,"bytes":n} on stdout.
import { createReadStream, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'minio';

const [dir, bucket, prefix] = process.argv.slice(2);
if (!dir || !bucket || prefix === undefined) {
  console.error('usage: node raw-put.mjs DIR BUCKET PREFIX');
  process.exit(2);
}
const url = new URL(process.env.S3_ENDPOINT ?? '');
const client = new Client({
  endPoint: url.hostname,
  port: Number(url.port),
  useSSL: false,
  accessKey: process.env.S3_ACCESS_KEY ?? '',
  secretKey: process.env.S3_SECRET_KEY ?? '',
  region: 'us-east-1',
  pathStyle: true,
});

const files = [];
const walk = (abs, rel) => {
  for (const e of readdirSync(abs, { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) walk(path.join(abs, e.name), r);
    else if (e.isFile()) files.push(r);
  }
};
walk(dir, '');

let next = 0;
let bytes = 0;
const worker = async () => {
  while (next < files.length) {
    const rel = files[next++];
    const abs = path.join(dir, ...rel.split('/'));
    const size = statSync(abs).size;
    await client.putObject(bucket, prefix ? `${prefix}/${rel}` : rel, createReadStream(abs), size);
    bytes += size;
  }
};
await Promise.all(Array.from({ length: Math.min(16, files.length) }, worker));
console.log(JSON.stringify({ files: files.length, bytes }));
