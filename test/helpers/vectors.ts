import { readFileSync } from 'node:fs';

/** Reads a frozen vector file from test/vectors/. */
export function loadVectors<T = any>(name: string): T { // eslint-disable-line @typescript-eslint/no-explicit-any
  return JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), 'utf8')) as T;
}
