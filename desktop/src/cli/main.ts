#!/usr/bin/env node
// `kluis`: the headless client (docs/architecture.md §10; docs/cli.md). Account and space commands live here; sync, status,
// versions and restore are registered by ./sync-commands.ts. Names of commands and options are a contract.
import './young-start.js';
import './fast-start.js';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Argument, Command, Option } from 'commander';
import { Classification, ErrorCode, KluisError, SpaceRole, fingerprint, initCrypto, publicIdentity, type Classification as ClassificationT, type SpaceRole as SpaceRoleT } from '@kluis/shared';
import { api } from '../api/endpoints.js';
import { login, logout, recover, signup } from '../account/auth.js';
import { kluisHome, loadAccount } from '../account/state.js';
import { accountClient, addMember, createSpace, fingerprintOf, orgPolicy, removeMember, setMemberRole, setSpaceClass } from '../account/spaces.js';
import { CliError, emit, isJson, readStdinLines, reportError, safeText, stdinFlagMissing, table } from './io.js';
import { wipeAfterUnauthenticated } from './wipe-output.js';
import { readWipeReport } from '../account/wipe.js';
import { registerSyncCommands } from './sync-commands.js';
import { registerShareCommands } from './share-commands.js';
import { registerExportCommand } from './export-command.js';

export const VERSION = '0.1.0';

/** Options a secret must never arrive by: refused with a pointer to the --…-stdin flag. */
function secretArgvGuard(cmd: Command, names: string[]): Command {
  for (const name of names) cmd.addOption(new Option(`--${name} <value>`).hideHelp());
  return cmd;
}

function refuseSecretArgv(command: string, opts: Record<string, unknown>, names: string[]): void {
  for (const name of names) {
    const key = name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    if (opts[key] !== undefined) {
      throw new CliError(`secrets are never accepted on the command line (--${name}): other users can read it in the process list and your shell keeps it in its history; pipe it in with --${name}-stdin`);
    }
  }
  void command;
}

/** One line of standard input holding a secret. */
async function stdinSecret(what: string): Promise<string> {
  const [line] = await readStdinLines(1);
  if (line === undefined || line.length === 0) throw new CliError(`no ${what} on standard input (expected it on the first line)`);
  return line;
}

function when(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

async function loadOpenAccount() {
  await initCrypto({ wasm: 'lazy' });
  return loadAccount(kluisHome());
}

/**
 * The `kluis` program. `registerExtra` adds more commands (the bin passes the sync commands); tests and the
 * Electron shell can build a program without them.
 */
export function buildProgram(registerExtra?: (program: Command) => void): Command {
  const program = new Command();
  program
    .name('kluis')
    .description('Kluis: end-to-end encrypted file sync. State lives in $KLUIS_HOME (default ~/.kluis).')
    .version(VERSION, '-V, --version')
    .option('--json', 'machine-readable output; errors as {"error":{"code","message"}}')
    .exitOverride()
    // Failures are reported by run() as one line; commander's own error text and error-help are not printed.
    .configureOutput({ outputError: () => undefined, writeErr: () => undefined })
    .showSuggestionAfterError(true);

  // ----- accounts

  secretArgvGuard(program.command('signup'), ['password'])
    .description('create your account with an invite (prints your recovery key once)')
    .requiredOption('--server <url>', 'server URL, e.g. https://kluis.example.be')
    .requiredOption('--email <email>', 'your e-mail address (the invited one)')
    .requiredOption('--invite <token>', 'the invite token from your administrator')
    .option('--password-stdin', 'read the new password from the first line of standard input')
    .option('--device-name <name>', 'name of this device in `kluis devices`')
    .action(async (o, cmd: Command) => {
      refuseSecretArgv('signup', o, ['password']);
      if (!o.passwordStdin) throw stdinFlagMissing('signup', '--password-stdin', 'password');
      const password = await stdinSecret('password');
      const r = await signup({ server: o.server, email: o.email, invite: o.invite, password, deviceName: o.deviceName });
      const s = r.session;
      emit(cmd, () => [
        `Signed up as ${s.email} (${s.role}) on ${s.server}; this device is ${s.deviceId}.`,
        '',
        'Your RECOVERY KEY. It is shown this once and stored nowhere: write it down or print it and keep it offline.',
        'It is the only way back into your account and files if you forget your password.',
        '',
        `    ${r.recoveryKey}`,
        '',
        `Your fingerprint: ${r.fingerprint}  (colleagues compare it with: kluis fingerprint ${s.email})`,
      ].join('\n'), {
        email: s.email, userId: s.userId, orgId: s.orgId, role: s.role, deviceId: s.deviceId, server: s.server,
        recoveryKey: r.recoveryKey, fingerprint: r.fingerprint, kdf: r.kdf,
      });
    });

  secretArgvGuard(program.command('login'), ['password', 'recovery-key'])
    .description('log in on this device; with --recovery-key-stdin, reset a forgotten password')
    .requiredOption('--server <url>', 'server URL')
    .requiredOption('--email <email>', 'your e-mail address')
    .option('--password-stdin', 'read the password from the first line of standard input')
    .option('--recovery-key-stdin', 'forgotten password: read the recovery key (line 1) and a NEW password (line 2) from standard input')
    .option('--device-name <name>', 'name of this device in `kluis devices`')
    .action(async (o, cmd: Command) => {
      refuseSecretArgv('login', o, ['password', 'recovery-key']);
      if (o.recoveryKeyStdin) {
        const lines = await readStdinLines(2);
        if (!lines[0]) throw new CliError('no recovery key on standard input (line 1: the recovery key, line 2: the new password)');
        if (!lines[1]) throw new CliError('no new password on standard input (line 1: the recovery key, line 2: the new password)');
        const r = await recover({ server: o.server, email: o.email, recoveryKey: lines[0], newPassword: lines[1], deviceName: o.deviceName });
        const s = r.session;
        emit(cmd, `Password of ${s.email} reset with the recovery key; every other device was signed out. Logged in on ${s.server} as device ${s.deviceId}. Your recovery key stays the same.`,
          { email: s.email, userId: s.userId, orgId: s.orgId, role: s.role, deviceId: s.deviceId, server: s.server, fingerprint: r.fingerprint, recovered: true, otherSessionsRevoked: true });
        return;
      }
      if (!o.passwordStdin) throw stdinFlagMissing('login', '--password-stdin', 'password');
      const password = await stdinSecret('password');
      const r = await login({ server: o.server, email: o.email, password, deviceName: o.deviceName });
      const s = r.session;
      emit(cmd, `Logged in as ${s.email} (${s.role}) on ${s.server}; this device is ${s.deviceId}.\nYour fingerprint: ${r.fingerprint}`,
        { email: s.email, userId: s.userId, orgId: s.orgId, role: s.role, deviceId: s.deviceId, server: s.server, fingerprint: r.fingerprint, recovered: false });
    });

  program.command('logout')
    .description('sign this device out and delete its keys and session from $KLUIS_HOME')
    .action(async (_o, cmd: Command) => {
      const r = await logout({ whenEnded: (err) => wipeAfterUnauthenticated(err, isJson(cmd)) });
      if (r.server === 'unreachable') {
        throw new CliError(`local keys and session deleted, but the server could not be told (${safeText(r.error?.message ?? 'unknown error')}): revoke this device from another one with kluis devices revoke`, 1, 'network');
      }
      emit(cmd, r.email ? `Logged out ${r.email}; keys and session removed from this device.` : 'Local state removed.', { loggedOut: true, email: r.email, server: r.server });
    });

  program.command('whoami')
    .description('show the account logged in on this device')
    .action(async (_o, cmd: Command) => {
      const account = await loadOpenAccount();
      const me = await api.me(accountClient(account));
      const mine = publicIdentity(account.keys);
      if (me.userId !== account.session.userId || me.encPublicKey !== mine.encPublicKey || me.signPublicKey !== mine.signPublicKey) {
        throw new KluisError(ErrorCode.BadKey, 'the server lists other keys for this account than the ones on this device: log in again');
      }
      const fp = fingerprint(mine);
      const s = account.session;
      emit(cmd, table(['', ''], [
        ['email', safeText(me.email)], ['role', me.role], ['organisation', `${safeText(me.orgName)} (${me.orgId})`], ['server', s.server],
        ['device', me.deviceId], ['fingerprint', fp], ['home', account.home],
      ]).split('\n').slice(1).join('\n'), {
        email: me.email, userId: me.userId, role: me.role, orgId: me.orgId, orgName: me.orgName, server: s.server, deviceId: me.deviceId, fingerprint: fp, home: account.home,
      });
    });

  program.command('fingerprint')
    .description('your fingerprint, or a colleague\'s from the directory (identity signature verified); compare out of band')
    .argument('[email]', 'a colleague\'s e-mail address')
    .option('--accept', 'after comparing it out of band: trust this colleague\'s current keys from now on (replaces the pinned ones)')
    .action(async (email: string | undefined, o: { accept?: boolean }, cmd: Command) => {
      const account = await loadOpenAccount();
      const r = await fingerprintOf(account, email, o.accept === true);
      const lines = [`${safeText(r.email)}  ${r.fingerprint}`];
      if (r.accepted) lines.push(r.accepted.previous && r.accepted.previous !== r.fingerprint ? `Accepted: replaces the pinned ${r.accepted.previous}.` : 'Accepted: pinned on this device.');
      else if (r.pinned === null) lines.push('Not pinned yet: it is pinned the first time you share with this colleague.');
      else if (r.pinned !== r.fingerprint) lines.push(`CHANGED: this device pinned ${r.pinned}. Compare the new fingerprint in person or by phone before: kluis fingerprint --accept ${safeText(r.email)}`);
      emit(cmd, lines.join('\n'), r);
    });

  const devices = program.command('devices')
    .description('list the devices (sessions) of your account; `devices revoke ID` signs one out')
    .option('--all', 'include devices that were signed out or expired')
    .action(async (o, cmd: Command) => {
      const account = await loadOpenAccount();
      const now = Date.now();
      const list = (await api.devices(accountClient(account))).map((d) => ({
        ...d, status: d.current ? 'current' : d.revokedAt !== null ? 'revoked' : d.expiresAt <= now ? 'expired' : 'active',
      })).filter((d) => o.all || d.status === 'current' || d.status === 'active');
      emit(cmd, () => table(['ID', 'STATUS', 'LAST SEEN', 'CLIENT', 'NAME'],
        list.map((d) => [d.deviceId, d.status, when(d.lastSeenAt), safeText(d.client ?? '-', 40), safeText(d.name, 80)])), { devices: list });
    });
  devices.command('revoke')
    .description('sign a device out (its token stops working at once)')
    .argument('<id>', 'device id from `kluis devices`')
    .action(async (id: string, _o, cmd: Command) => {
      const account = await loadOpenAccount();
      if (id === account.session.deviceId) throw new CliError('that is this device: use kluis logout');
      await api.revokeDevice(accountClient(account), id);
      emit(cmd, `Device ${id} signed out.`, { revoked: id });
    });

  devices.command('wipe-report')
    .description('what a device of yours removed when an administrator had it wiped, the unsynced edits it lost among it')
    .argument('<id>', 'device id from `kluis devices --all`')
    .action(async (id: string, _o, cmd: Command) => {
      const r = await readWipeReport(await loadOpenAccount(), id);
      const lines = [`Device ${id} wiped itself at ${when(r.report.wipedAt)} (report signed by the device, verified): ${r.report.filesRemoved} file(s) removed in ${r.report.folders.length} folder(s); ${r.report.unsynced} unsynced edit(s) lost.`];
      for (const p of r.unsyncedPaths ?? []) lines.push(`  unsynced: ${safeText(p)}`);
      emit(cmd, lines.join('\n'), r);
    });

  // ----- spaces

  const space = program.command('space').description('spaces (synced and shared folders) and their members');
  space.command('create')
    .description('create a space; you become its manager')
    .argument('<name>', 'name of the space')
    .addOption(new Option('--class <classification>', 'classification').choices(Classification.options).default('internal'))
    .action(async (name: string, o, cmd: Command) => {
      const account = await loadOpenAccount();
      const s = await createSpace(account, name, o.class);
      emit(cmd, `Created space "${safeText(s.name)}" (${s.spaceId}), ${s.classification}, key epoch ${s.keyEpoch}; you are its manager.`, s);
    });
  space.command('list')
    .description('the spaces you are a member of')
    .action(async (_o, cmd: Command) => {
      const account = await loadOpenAccount();
      const spaces = await api.spaces(accountClient(account));
      emit(cmd, () => spaces.length === 0 ? 'No spaces yet (kluis space create NAME).' : table(['NAME', 'ID', 'CLASS', 'ROLE', 'EPOCH', 'SEQ'],
        spaces.map((s) => [safeText(s.name, 60), s.spaceId, s.classification, s.role, String(s.keyEpoch), String(s.seq)])), { spaces });
    });
  space.command('set-class')
    .description('raise a space\'s classification (never lowered); the class decides what sharing is allowed')
    .argument('<space>', 'space name or id')
    .addArgument(new Argument('<class>', 'the new class').choices(Classification.options))
    .action(async (spaceRef: string, classification: string, _o, cmd: Command) => {
      const account = await loadOpenAccount();
      const r = await setSpaceClass(account, spaceRef, classification as ClassificationT);
      emit(cmd, `"${safeText(r.name)}" is now ${r.classification} (was ${r.from}).`, r);
    });
  program.command('policy')
    .description('what each space class allows in your organisation (links, their life, passwords, downloads)')
    .action(async (_o, cmd: Command) => {
      const account = await loadOpenAccount();
      const p = await orgPolicy(account);
      const yes = (b: boolean) => (b ? 'yes' : 'no');
      emit(cmd, () => table(['CLASS', 'LINKS', 'MAX DAYS', 'PASSWORD', 'MAX DOWNLOADS', 'EXTERNAL', 'SOURCE'],
        Object.entries(p.policies).map(([c, x]) => [c, yes(x.linksAllowed), x.linksAllowed ? String(x.maxLinkDays) : '-', yes(x.passwordRequired), x.maxDownloads === null ? 'any' : String(x.maxDownloads), yes(x.externalMembers), x.isDefault ? 'default' : 'organisation'])), p);
    });
  space.command('add-member')
    .description('give a colleague access: the space key is sealed to their verified public key')
    .argument('<space>', 'space name or id')
    .argument('<email>', 'the colleague\'s e-mail address')
    .addOption(new Option('--role <role>', 'their role').choices(SpaceRole.options).makeOptionMandatory())
    .action(async (spaceRef: string, email: string, o, cmd: Command) => {
      const account = await loadOpenAccount();
      const r = await addMember(account, spaceRef, email, o.role as SpaceRoleT);
      emit(cmd, `Added ${safeText(r.email)}${r.org ? ` of ${safeText(r.org.name)} (another organisation)` : ''} to "${safeText(r.name)}" as ${r.role}.`, r);
    });
  space.command('set-role')
    .description('change a member\'s role (a signed entry of the space\'s membership log; keys do not change)')
    .argument('<space>', 'space name or id')
    .argument('<email>', 'the member\'s e-mail address')
    .addArgument(new Argument('<role>', 'the new role').choices(SpaceRole.options))
    .action(async (spaceRef: string, email: string, role: string, _o, cmd: Command) => {
      const account = await loadOpenAccount();
      const r = await setMemberRole(account, spaceRef, email, role as SpaceRoleT);
      emit(cmd, `${safeText(r.email)} is now ${r.role} of "${safeText(r.name)}" (was ${r.previous}).`, r);
    });
  space.command('remove-member')
    .description('remove a member and rotate the space key (new key epoch for everyone who stays)')
    .argument('<space>', 'space name or id')
    .argument('<email>', 'the member\'s e-mail address')
    .action(async (spaceRef: string, email: string, _o, cmd: Command) => {
      const account = await loadOpenAccount();
      const r = await removeMember(account, spaceRef, email);
      emit(cmd, `Removed ${safeText(r.email)} from "${safeText(r.name)}"; the space key was rotated to epoch ${r.keyEpoch} for the ${r.remaining} remaining member(s).`, r);
    });

  registerExtra?.(program);
  // `kluis -V` / `--version` is the program's; `restore PATH --version V` is the subcommand's (docs/architecture.md §10). With
  // positional options the program reads its own options only before the command name, so every command takes
  // --json itself too (it still works before or after the command name).
  program.enablePositionalOptions();
  const addJson = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      if (!sub.options.some((o) => o.long === '--json')) sub.addOption(new Option('--json', 'machine-readable output').hideHelp());
      addJson(sub);
    }
  };
  addJson(program);
  return program;
}

/** Name of the command being run (for error wording), e.g. "login" or "space add-member". */
function commandName(argv: string[]): string {
  return argv.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ');
}

/** Runs the program on `argv` (user arguments only); returns the exit code. */
export async function run(program: Command, argv: string[]): Promise<number> {
  const json = argv.slice(0, argv.includes('--') ? argv.indexOf('--') : argv.length).includes('--json');
  if (argv.filter((a) => a !== '--json').length === 0) {
    return reportError(new CliError('missing command (kluis --help lists them)'), json);
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    // --help and --version print and end with 0; help shown for a missing subcommand is a usage failure.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
    if (e.code === 'commander.help') return reportError(new CliError(`missing subcommand (kluis ${commandName(argv)} --help lists them)`), json);
    try {
      // A session the server ended may carry an administrator's wipe order: this is the device's next contact.
      await wipeAfterUnauthenticated(err, json);
    } catch (wiped) {
      return reportError(wiped, json);
    }
    return reportError(err, json, commandName(argv).split(' ')[0]);
  }
}

const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
})();

// Where this module's code (in the CLI bundle, desktop/dist/cli/kluis.mjs) finds the worker threads: checked by
// test/integration/cli-bin.test.ts against the bundle itself.
export { CHUNK_ID_WORKER_URL, HASH_WORKER_URL } from '../sync/worker-urls.js';

/** The whole `kluis` program, as the npm bin (desktop/bin/kluis.js) and a direct run both start it. */
export function fullProgram(): Command {
  return buildProgram((p) => {
    registerSyncCommands(p);
    registerShareCommands(p);
    registerExportCommand(p);
  });
}

if (invokedDirectly) {
  process.exitCode = await run(fullProgram(), process.argv.slice(2));
}
