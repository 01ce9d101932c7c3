// The frozen-vector and tamper suites once more on libsodium's WASM build (KLUIS_SODIUM=wasm): the web pages and the
// sandboxed Electron renderer have no other, and in Node the same suites run on sodium-native (docs/architecture.md §2).
// crypto-fastpaths too: without the addon Node signs through node:crypto, compared there with libsodium.js.
import '../helpers/wasm-sodium.js';
import test from 'ava';
import * as k from '@kluis/shared';
import './crypto-vectors.test.js';
import './crypto-fastpaths.test.js';
import './batch-wrap.test.js';
import './crypto-tamper.test.js';
import './membership-log.test.js';
import './audit-merkle.test.js';
import './backup-vectors.test.js';
import './device-wipe.test.js';
import './link-folder-vectors.test.js';
import './request-vectors.test.js';

test('KLUIS_SODIUM=wasm selects the WASM backend although sodium-native is installed', async (t) => {
  await k.initCrypto();
  t.is(k.cryptoBackend(), 'wasm');
  t.throws(() => k.setCryptoBackend('native'), { message: /not loaded/ });
});
