// Runs the suites of a test file on PostgreSQL (helpers/postgres.ts). Kept apart from postgres.ts because it needs
// ava, which refuses to load outside its CLI (the benchmarks start servers through helpers/server.ts too).
import test from 'ava';
import { stopSharedPostgres } from './postgres.js';

/**
 * Call it at the top level of a pg-*.test.ts file that imports another suite (`import './auth.test.js';
 * usePostgres();`). Tests run only after every module of the file has loaded, so the switch is in place before the
 * first server starts; the cluster stops after the last test. Ava runs after hooks in the order they were registered:
 * a file that closes its own connections or servers in an after hook registers it before calling this.
 */
export function usePostgres(): void {
  process.env.KLUIS_TEST_DB = 'postgres';
  test.after.always('stop PostgreSQL', stopSharedPostgres);
}
