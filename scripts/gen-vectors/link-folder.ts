// Writes test/vectors/link-folder.json ONCE: a folder link's sealed listing (docs/crypto.md §9.1) with a recorded
// link secret and nonce, so the listing's canonical text, its ad and its envelope are checked byte for byte.
import { existsSync, writeFileSync } from 'node:fs';
import * as k from '@kluis/shared';

const out = new URL('../../test/vectors/link-folder.json', import.meta.url);
if (existsSync(out)) {
  console.error('test/vectors/link-folder.json exists: vectors are frozen and never regenerated');
  process.exit(1);
}
await k.initCrypto();
const b64 = k.toBase64Url;
const linkId = k.newId();
const linkSecret = k.newLinkSecret();
const keys = k.deriveLinkKeys(linkSecret, null);
const entry = (path: string, content: Uint8Array) => {
  const fileKey = k.generateFileKey();
  const sub = k.deriveFileSubkeys(fileKey);
  const chunk = k.encryptChunk(sub, content);
  return {
    entry: { path, size: content.length, hash: k.contentHash(content), fileId: k.newId(), versionId: k.newId(), fileKey: b64(fileKey), chunks: content.length ? [[chunk.id, content.length] as [string, number]] : [] },
    chunk: content.length ? { plaintext: b64(content), ciphertext: b64(chunk.ciphertext) } : null,
  };
};
const files = [entry('Bijlagen/scan één.pdf', k.hazmat.randomBytes(300)), entry('advies.txt', new TextEncoder().encode('Advies aan de rechtbank.\n')), entry('leeg.txt', new Uint8Array())]
  .sort((a, b) => (a.entry.path < b.entry.path ? -1 : 1));
const listing: k.FolderListing = { v: 1, name: 'Dossier 2024-117', files: files.map((f) => f.entry) };
const nonce = k.hazmat.randomBytes(24);
const canonical = k.canonicalJson(listing);
const sealed = k.hazmat.sealEnvelopeWithNonce(keys.linkKey, new TextEncoder().encode(canonical), k.folderListingAd(linkId), nonce, 'sodium');
writeFileSync(out, JSON.stringify({
  note: 'A folder link listing sealed under linkKey (docs/crypto.md §9.1). Binary values are base64url without padding unless the key ends in Hex. Never regenerate.',
  linkId, linkSecret, linkKey: b64(keys.linkKey), adHex: k.toHex(k.folderListingAd(linkId)),
  listing, listingCanonical: canonical, nonce: b64(nonce), sealed: b64(sealed),
  chunks: files.map((f) => f.chunk),
}, null, 2) + '\n');
console.log('wrote', out.pathname);
