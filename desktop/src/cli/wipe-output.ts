// What the `kluis` CLI does when the server ends its session (docs/cli.md "Remote wipe"): it asks whether an
// administrator ordered a wipe (account/wipe.ts) and, if so, the command ends with the wipe report instead of its
// own result: human text on stdout, the one-line reason on stderr, exit code 3; with --json the error document
// carries the report as `wipe`.
import { ErrorCode } from '@kluis/shared';
import { ApiRequestError } from '../api/client.js';
import { kluisHome } from '../account/state.js';
import { wipeIfOrdered, type WipeOutcome } from '../account/wipe.js';
import { human } from './sync-commands.js';
import { CliError, safeText } from './io.js';

function text(o: WipeOutcome): string {
  const lines = [`This device was revoked by an administrator and has wiped itself (order ${o.orderId}).`];
  for (const f of o.folders) {
    lines.push(`${safeText(f.root)}: removed ${f.filesRemoved} file(s), ${human(f.bytesRemoved)}${f.leftInPlace.length ? `; left in place (not synced by kluis): ${f.leftInPlace.length}` : ''}${f.failed.length ? `; could not remove: ${f.failed.length}` : ''}`);
    for (const p of f.failed) lines.push(`  not removed: ${safeText(p)}`);
  }
  lines.push(`Removed local state: ${o.state.join(', ') || 'none'}.`);
  if (o.unsynced.length) {
    lines.push(`${o.unsynced.length} unsynced local edit(s) were deleted and never reached the server:`);
    for (const p of o.unsynced) lines.push(`  unsynced: ${safeText(p)}`);
  } else lines.push('No unsynced local edits were lost.');
  lines.push(o.reported ? 'The signed wipe report was sent to the server.' : `The wipe report was not sent: ${safeText(o.reportError ?? 'unknown reason')}`);
  return lines.join('\n');
}

/**
 * After a command failed with 401: wipes this device if a wipe was ordered and throws the CliError that ends the
 * command with the report; returns (and the caller rethrows its own error) when none was ordered or the check fails.
 */
export async function wipeAfterUnauthenticated(err: unknown, json: boolean): Promise<void> {
  if (!(err instanceof ApiRequestError) || err.status !== 401 || err.code !== ErrorCode.Unauthenticated) return;
  let outcome: WipeOutcome | null;
  try {
    outcome = await wipeIfOrdered(kluisHome());
  } catch {
    return; // the server is away or the state unreadable: the original error stands, the next run asks again
  }
  if (!outcome) return;
  if (!json) process.stdout.write(`${text(outcome)}\n`);
  throw new CliError('this device was revoked by an administrator and wiped itself', 3, 'device_wiped', { wipe: outcome });
}
