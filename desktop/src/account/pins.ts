// Colleagues' keys pinned on first use (docs/crypto.md §3, "Fingerprint"). Self-signed identities prove only that
// whoever holds a key claims an address, so a server could swap a colleague's keys for its own; pinning makes such a
// swap visible the moment it happens after first contact: every later use of that colleague (sealing a key to them,
// trusting them in a space's membership log) is refused with both fingerprints until the user has compared the new
// one in person or by phone and accepted it (`kluis fingerprint --accept EMAIL`).
import { CryptoError, ErrorCode, fingerprint } from '@kluis/shared';
import { loadPins, savePins, type Account, type PinRecord } from './state.js';

export interface PinnableIdentity {
  userId: string;
  email: string;
  encPublicKey: string;
  signPublicKey: string;
}

/** Thrown when a colleague's keys differ from the pinned ones; names both fingerprints and the way out. */
export class KeyChangedError extends CryptoError {
  constructor(
    readonly email: string,
    readonly pinnedFingerprint: string,
    readonly newFingerprint: string,
  ) {
    super(ErrorCode.KeyChanged, `the keys of ${email} changed since you first used them (pinned ${pinnedFingerprint}, now ${newFingerprint}): ` +
      `compare with ${email} in person or by phone, then: kluis fingerprint --accept ${email}`);
  }
}

type Keys = Pick<PinRecord, 'userId' | 'signPublicKey' | 'encPublicKey'>;
const same = (pin: Keys, who: Keys) => pin.userId === who.userId && pin.signPublicKey === who.signPublicKey && pin.encPublicKey === who.encPublicKey;
const keysOf = (who: Keys): Keys => ({ userId: who.userId, signPublicKey: who.signPublicKey, encPublicKey: who.encPublicKey });

/**
 * Checks colleagues against their pins and pins the ones seen for the first time. Throws KeyChangedError for the
 * first whose keys differ (nothing is pinned then). `allowEarlier`: keys accepted before also pass (a membership log
 * names a colleague with the keys they had when added). Our own identity is never pinned: it is checked at login.
 */
export function checkPins(account: Account, identities: readonly PinnableIdentity[], allowEarlier = false): void {
  const pins = loadPins(account);
  const fresh: Record<string, PinRecord> = {};
  for (const who of identities) {
    if (who.userId === account.session.userId) continue;
    const pin = pins[who.email] ?? fresh[who.email];
    if (!pin) {
      fresh[who.email] = { ...keysOf(who), pinnedAt: Date.now(), earlier: [] };
    } else if (!same(pin, who) && !(allowEarlier && pin.earlier.some((k) => same(k, who)))) {
      throw new KeyChangedError(who.email, fingerprint(pin), fingerprint(who));
    }
  }
  if (Object.keys(fresh).length > 0) savePins(account, fresh);
}

/** Trusts a colleague's current keys, compared out of band; the keys pinned before stay accepted for history. */
export function acceptPin(account: Account, who: PinnableIdentity): { previous: string | null; current: string } {
  const old = loadPins(account)[who.email];
  const earlier = old ? [...old.earlier.filter((k) => !same(k, old) && !same(k, who)), ...(same(old, who) ? [] : [keysOf(old)])].slice(-100) : [];
  savePins(account, { [who.email]: { ...keysOf(who), pinnedAt: Date.now(), earlier } });
  return { previous: old ? fingerprint(old) : null, current: fingerprint(who) };
}

/** The pinned fingerprint of an address, if any. */
export function pinnedFingerprint(account: Account, email: string): string | null {
  const pin = loadPins(account)[email];
  return pin ? fingerprint(pin) : null;
}
