// The handlers of account:signup|login|confirmRecovery|logout, spaces:list and devices:list|revoke (docs/desktop.md
// "IPC"), over the same account code as the CLI (account/auth.ts, account/spaces.ts). Sign-up answers the recovery
// key this once; it stays in memory only, until the user types words of it back (account:confirmRecovery).
import { ErrorCode, KluisError, fingerprint, publicIdentity } from '@kluis/shared';
import { api } from '../../api/endpoints.js';
import { login, logout, signup } from '../../account/auth.js';
import { loadAccount, type Account } from '../../account/state.js';
import { accountClient } from '../../account/spaces.js';
import type { AppCore } from './core.js';
import type { Handlers } from './ipc.js';

type AccountChannels = 'account:signup' | 'account:login' | 'account:confirmRecovery' | 'account:logout' | 'spaces:list' | 'devices:list' | 'devices:revoke';

/** What app:status and the account answers show of an account. */
export function accountView(core: AppCore, account: Account) {
  return {
    server: account.session.server, email: account.session.email, fingerprint: fingerprint(publicIdentity(account.keys)),
    recoveryKeyConfirmed: core.store.recoveryConfirmed(account.session.userId),
  };
}

/** A recovery key group as typed: case, spaces and the look-alikes 0/1/8 of O/I/B do not matter (as parseRecoveryKey). */
const normalGroup = (w: string) => w.toUpperCase().replace(/\s/g, '').replace(/0/g, 'O').replace(/1/g, 'I').replace(/8/g, 'B');

/** Checks typed words (1-based group numbers are the renderer's business: `index` counts from 0) against the key. */
export function checkRecoveryWords(key: string, words: readonly { index: number; word: string }[]): void {
  const groups = key.split('-');
  const seen = new Set<number>();
  for (const { index, word } of words) {
    if (index >= groups.length) throw new KluisError(ErrorCode.ValidationFailed, `the recovery key has ${groups.length} groups; there is no group ${index + 1}`);
    if (seen.has(index)) throw new KluisError(ErrorCode.ValidationFailed, `group ${index + 1} was asked twice`);
    seen.add(index);
    if (normalGroup(word) !== groups[index]) throw new KluisError(ErrorCode.ValidationFailed, `group ${index + 1} does not match the recovery key: look at what you wrote down`);
  }
}

function refuseIfSignedIn(core: AppCore): void {
  const { account } = core.current;
  if (account) throw new KluisError(ErrorCode.Conflict, `already logged in as ${account.session.email}: log out first`);
}

export function accountHandlers(core: AppCore): Pick<Handlers, AccountChannels> {
  const { home, protection } = core.o;
  const opened = async () => {
    const account = loadAccount(home, protection.opener);
    await core.signedIn(account);
    return account;
  };
  return {
    'account:signup': async ({ server, email, invite, password, deviceName }) => {
      refuseIfSignedIn(core);
      const r = await signup({ server, email, invite, password, deviceName, home, env: core.env, ...(protection.sealer ? { sealer: protection.sealer } : {}) });
      const account = await opened();
      core.recoveryKey = r.recoveryKey;
      return { account: accountView(core, account), recoveryKey: r.recoveryKey };
    },
    'account:login': async ({ server, email, password, deviceName }) => {
      refuseIfSignedIn(core);
      await login({ server, email, password, deviceName, home, env: core.env, ...(protection.sealer ? { sealer: protection.sealer } : {}) });
      return { account: accountView(core, await opened()) };
    },
    'account:confirmRecovery': async ({ words }) => {
      const account = core.requireAccount();
      if (core.store.recoveryConfirmed(account.session.userId)) return { ok: true as const };
      if (!core.recoveryKey) throw new KluisError(ErrorCode.Conflict, 'the recovery key is shown once, at sign-up, and this app no longer holds it: nothing to confirm');
      checkRecoveryWords(core.recoveryKey, words);
      core.store.confirmRecovery(account.session.userId);
      core.recoveryKey = null;
      return { ok: true as const };
    },
    'account:logout': async () => {
      const account = core.requireAccount();
      const userId = account.session.userId;
      await core.endSession();
      await logout({ home, env: core.env, whenEnded: async () => void await core.wipeIfOrdered(userId) });
      core.store.forget(userId);
      return { ok: true as const };
    },
    'spaces:list': async () => {
      const spaces = await api.spaces(accountClient(core.requireAccount()));
      return { spaces: spaces.map((s) => ({ spaceId: s.spaceId, name: s.name, role: s.role, classification: s.classification })) };
    },
    'devices:list': async () => {
      const devices = await api.devices(accountClient(core.requireAccount()));
      return { devices: devices.map((d) => ({ deviceId: d.deviceId, name: d.name, lastSeenAt: d.lastSeenAt ?? 0, current: d.current, revoked: d.revokedAt !== null })) };
    },
    'devices:revoke': async ({ deviceId }) => {
      const account = core.requireAccount();
      if (deviceId === account.session.deviceId) throw new KluisError(ErrorCode.BadRequest, 'that is this computer: log out instead');
      await api.revokeDevice(accountClient(account), deviceId);
      return { ok: true as const };
    },
  };
}
