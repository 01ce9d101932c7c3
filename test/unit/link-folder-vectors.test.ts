// Known-answer test of a folder link's listing (docs/crypto.md §9.1, test/vectors/link-folder.json): the recorded
// secret gives the recorded linkKey, the listing's canonical text and ad are as recorded, sealing with the recorded
// nonce gives the recorded bytes (both envelope paths), and the sealed listing opens to the listing; each entry's
// file key opens its chunk. Changed bytes, another link id and malformed listings are refused.
import test from 'ava';
import * as k from '@kluis/shared';
import { loadVectors } from '../helpers/vectors.js';

const V = loadVectors('link-folder.json');
const d = k.fromBase64Url;
const e = k.toBase64Url;

test.before(async () => {
  await k.initCrypto();
});

for (const backend of ['sodium', 'node'] as const) {
  test(`folder listing (${backend} path): recorded key, canonical text, ad and envelope`, (t) => {
    const keys = k.deriveLinkKeys(V.linkSecret, null);
    t.is(e(keys.linkKey), V.linkKey);
    t.is(k.toHex(k.folderListingAd(V.linkId)), V.adHex);
    t.is(k.canonicalJson(V.listing), V.listingCanonical);
    const sealed = k.hazmat.sealEnvelopeWithNonce(keys.linkKey, new TextEncoder().encode(V.listingCanonical), k.fromHex(V.adHex), d(V.nonce), backend);
    t.is(e(sealed), V.sealed);
    t.deepEqual(k.openFolderListing(d(V.sealed), V.linkId, keys), V.listing);
  });
}

test('each listed file opens with its file key and matches its size and hash', (t) => {
  const listing = V.listing as k.FolderListing;
  listing.files.forEach((f, i) => {
    const c = V.chunks[i];
    if (f.size === 0) return t.is(c, null);
    const plain = k.decryptChunk(k.deriveFileSubkeys(d(f.fileKey)), f.chunks[0]![0], d(c.ciphertext));
    t.is(e(plain), c.plaintext);
    t.is(k.contentHash(plain), f.hash);
  });
});

test('a changed byte, another link id, or a malformed listing is refused', (t) => {
  const keys = k.deriveLinkKeys(V.linkSecret, null);
  const sealed = d(V.sealed);
  sealed[50]! ^= 0x80;
  t.throws(() => k.openFolderListing(sealed, V.linkId, keys), { instanceOf: k.CryptoError });
  t.throws(() => k.openFolderListing(d(V.sealed), k.newId(), keys), { instanceOf: k.CryptoError });
  const good = V.listing as k.FolderListing;
  const bad: unknown[] = [
    { ...good, files: [...good.files].reverse() },
    { ...good, files: [{ ...good.files[0]!, path: '../uit.txt' }] },
    { ...good, files: [{ ...good.files[0]!, size: 1 }] },
    { ...good, name: 'a/b' },
    { ...good, extra: true },
    { ...good, v: 2 },
  ];
  for (const l of bad) t.throws(() => k.sealFolderListing(l as k.FolderListing, V.linkId, keys), { instanceOf: k.CryptoError });
});
