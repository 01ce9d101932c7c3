#!/usr/bin/env node
// Exits 0 when URL answers HTTP at all (any status: an anonymous S3 request gets a well-formed reply),
// 1 otherwise. Used by start-local-s3.sh to wait for radosgw without depending on curl.
const url = process.argv[2];
if (!url) {
  console.error('usage: http-ok.mjs URL');
  process.exit(2);
}
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  process.exit(0);
} catch {
  process.exit(1);
}
