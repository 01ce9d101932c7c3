// Keys at rest in the desktop app (docs/desktop.md "Keys at rest"). The account's secret keys are sealed with
// Electron's safeStorage (Keychain on macOS, DPAPI on Windows, libsecret/kwallet on Linux) before they reach
// keys.json; only the public keys stay in clear there. Where safeStorage cannot protect them (Linux without a
// keyring, where Electron falls back to its "basic_text" backend and a key built into Chromium), the app keeps them
// as the CLI does, in a 0600 file of a 0700 directory, and says so: app:status answers `keysProtected: 'file-only'` and
// the app shows one notification at start. Refusing instead would lock out every such desktop while protecting
// nothing the CLI on the same machine does not already hold the same way.
import type * as Electron from 'electron';
import type { KeySealer } from '../../account/state.js';

export type SafeStorageLike = Pick<Electron.SafeStorage, 'isEncryptionAvailable' | 'encryptString' | 'decryptString'> & {
  getSelectedStorageBackend?: Electron.SafeStorage['getSelectedStorageBackend'];
};

export interface KeyProtection {
  mode: 'os-keychain' | 'file-only';
  /** seals new keys; undefined when they are kept in a 0600 file */
  sealer: KeySealer | undefined;
  /** opens keys sealed earlier (throws when the keychain cannot: loadAccount then asks for a new login) */
  opener: KeySealer;
}

/** Linux backends that are no protection: a fixed password compiled into Chromium, or none found. */
const WEAK_BACKENDS = new Set(['basic_text', 'unknown']);

/** What protects the keys on this machine. `platform` for tests. */
export function keyProtection(safeStorage: SafeStorageLike, platform: NodeJS.Platform = process.platform): KeyProtection {
  const opener: KeySealer = {
    seal: (plain) => safeStorage.encryptString(plain),
    open: (sealed) => safeStorage.decryptString(sealed),
  };
  let available = safeStorage.isEncryptionAvailable();
  if (available && platform === 'linux' && safeStorage.getSelectedStorageBackend) {
    available = !WEAK_BACKENDS.has(safeStorage.getSelectedStorageBackend());
  }
  return available ? { mode: 'os-keychain', sealer: opener, opener } : { mode: 'file-only', sealer: undefined, opener };
}
