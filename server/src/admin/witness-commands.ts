// kluis-admin audit witness and audit verify-export (docs/cli.md, docs/operations.md "Audit witness"): commands that
// need no database, so that an organisation runs them on a machine of its own.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { initCrypto } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import { checkAuditExport } from '../audit/export.js';
import { Witness, WitnessError, type WitnessResult } from './witness.js';

/** Exit code of a witness that found a fork, a rollback or a bad signature. */
export const WITNESS_ALARM_EXIT = 3;

interface Io {
  print: (human: string, value: unknown) => void;
  setJson: (on: boolean) => void;
}

function tokenFrom(file: string | undefined): string {
  const text = file !== undefined ? readFileSync(file, 'utf8') : process.env.KLUIS_WITNESS_TOKEN;
  const token = text?.trim();
  if (!token) throw new DomainError('validation_failed', 'give --token-file FILE (or KLUIS_WITNESS_TOKEN): the session token of an auditor or admin of the organisation');
  return token;
}

function describe(r: WitnessResult): string {
  if (!r.ok) return `AUDIT WITNESS ALARM (${r.alert.kind}): ${r.alert.reason}${r.reported ? '; reported to the server (audit.witness.alert)' : '; the server did not take the report'}`;
  if (!r.head) return 'no tree head signed yet; nothing to hold';
  if (r.firstRun) return `holding the tree head of size ${r.head.size} (first run; the server key is pinned)`;
  return r.previous && r.previous.size === r.head.size ? `tree head of size ${r.head.size} unchanged` : `tree head of size ${r.head.size} extends the one of size ${r.previous?.size} consistently`;
}

export function registerWitnessCommands(audit: Command, io: Io): void {
  audit.command('witness').description('watch a server\'s audit trail from another machine: each new signed tree head must extend the last one held (fork or rollback: exit 3)')
    .requiredOption('--server <url>', 'the server, e.g. https://kluis.example.be')
    .requiredOption('--org <orgId>', 'the organisation whose auditor or admin the token belongs to')
    .requiredOption('--state <dir>', 'where the witness keeps the last head it holds and its alarms (keep it off the server)')
    .option('--token-file <file>', 'a file holding the session token (default: $KLUIS_WITNESS_TOKEN)')
    .option('--public-key <key>', 'pin this audit key instead of the one the server announces at the first run')
    .option('--once', 'one check, then exit (0: consistent, 3: alarm, 1: could not check)')
    .option('--interval <seconds>', 'seconds between checks', '60')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      io.setJson(Boolean(o.json));
      const interval = Number(o.interval);
      if (!Number.isFinite(interval) || interval < 1) throw new DomainError('validation_failed', '--interval: at least 1 second');
      await initCrypto();
      const witness = new Witness({ server: o.server, orgId: o.org, token: tokenFrom(o.tokenFile), stateDir: path.resolve(o.state), publicKey: o.publicKey });
      for (;;) {
        let r: WitnessResult;
        try {
          r = await witness.check();
        } catch (err) {
          if (!(err instanceof WitnessError) || o.once) throw err instanceof WitnessError ? new DomainError('unavailable', err.message) : err;
          io.print(`witness: ${err.message} (trying again in ${interval} s)`, { ok: null, error: err.message });
          await new Promise((resolve) => setTimeout(resolve, interval * 1000));
          continue;
        }
        io.print(describe(r), r);
        if (!r.ok) {
          process.exitCode = WITNESS_ALARM_EXIT;
          return;
        }
        if (o.once) return;
        await new Promise((resolve) => setTimeout(resolve, interval * 1000));
      }
    });

  audit.command('verify-export').description('check a JSON audit export offline: the hash chain, the signed checkpoints and tree heads, the Merkle roots or inclusion proofs')
    .argument('<file>', 'the export (kluis-admin audit export --format json [--proofs], or GET …/audit/export)')
    .option('--public-key <key>', 'trust only this server key (as published at /api/v1/info); without it the export\'s own key is trusted, which proves consistency, not origin')
    .option('--json', 'machine-readable output')
    .action(async (file: string, o) => {
      io.setJson(Boolean(o.json));
      await initCrypto();
      let doc: unknown;
      try {
        doc = JSON.parse(readFileSync(file, 'utf8'));
      } catch (err) {
        throw new DomainError('validation_failed', `${file}: not readable JSON (${(err as Error).message})`);
      }
      const r = checkAuditExport(doc, o.publicKey ? [o.publicKey] : undefined);
      const human = r.ok
        ? `export intact: ${r.entries} entries (${r.complete ? 'the whole chain from entry 1' : 'with gaps: runs checked'}), ${r.checkpoints} signed checkpoints, ${r.treeHeads} tree heads, ${r.included} entries proven in the newest tree head`
        : `EXPORT BROKEN: ${r.problem}`;
      io.print(human, r);
      if (!r.ok) process.exitCode = 1;
    });
}
