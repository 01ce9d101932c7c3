// docs/crypto.md §5.2, file-key wraps of version 2 (made in batches), read with libsodium only: the leaf, the RFC 9162
// inclusion proof up to the signed root, the batch statement's signature, then the X25519 exchange and the envelope.
import { b64u, canonical, concat, equal, openEnvelope, sodium, utf8, verifySigned } from './primitives.js';

const sha256 = (m: Uint8Array): Uint8Array => sodium.crypto_hash_sha256(m);

/** RFC 9162 §2.1.3.2, step by step as the RFC writes it. */
export function rootFromProof(index: number, size: number, leaf: Uint8Array, proof: Uint8Array[]): Uint8Array | null {
  if (index >= size) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = sha256(concat(new Uint8Array([1]), p, r));
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = sha256(concat(new Uint8Array([1]), r, p));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

const ID = (s: string): Uint8Array => {
  const b = b64u(s);
  if (b.length !== 16) throw new Error('an id is 16 bytes');
  return b;
};

/** The wrap's signer (to be judged by the caller) and the file key, or an error naming what failed. */
export function openWrapV2(w: Record<string, unknown>, expect: { spaceId: string; fileId: string; keyEpoch: number }, pair: { pk: Uint8Array; sk: Uint8Array }): { signer: string; fileKey: Uint8Array } {
  const s = (k: string): string => {
    if (typeof w[k] !== 'string') throw new Error(`wrap v2: ${k} is not a string`);
    return w[k] as string;
  };
  const index = w.index;
  const size = w.size;
  if (w.v !== 2 || w.kind !== 'file-key') throw new Error('wrap v2: wrong version or kind');
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || (index as number) < 0 || (size as number) < 1) throw new Error('wrap v2: bad index or size');
  if (!Array.isArray(w.proof) || w.proof.length > 64) throw new Error('wrap v2: bad proof');
  if (s('spaceId') !== expect.spaceId || s('fileId') !== expect.fileId || w.keyEpoch !== expect.keyEpoch) throw new Error('wrap v2: another space, file or epoch');
  const sealed = b64u(s('sealed'));
  if (sealed.length !== 73) throw new Error('wrap v2: sealed is not 73 bytes');
  const leaf = sha256(concat(new Uint8Array([0]), utf8('kluis/wrap-leaf/v2'), ID(s('fileId')), sealed));
  const root = rootFromProof(index as number, size as number, leaf, (w.proof as string[]).map(b64u));
  if (!root || !equal(root, b64u(s('root')))) throw new Error('wrap v2: not in its batch');
  const statement = canonical({ v: 2, spaceId: s('spaceId'), keyEpoch: w.keyEpoch, recipient: s('recipient'), ephemeral: s('ephemeral'), signer: s('signer'), size, root: s('root') });
  if (!verifySigned('kluis/wrap-batch/v2', utf8(statement), b64u(s('sig')), b64u(s('signer')))) throw new Error('wrap v2: bad batch signature');
  const recipient = b64u(s('recipient'));
  if (!equal(recipient, pair.pk)) throw new Error('wrap v2: sealed to another key');
  const eph = b64u(s('ephemeral'));
  const shared = sodium.crypto_scalarmult(pair.sk, eph);
  const wrapKey = sodium.crypto_generichash(32, concat(utf8('kluis/wrap-key/v2'), shared, eph, recipient), null);
  const epoch = new Uint8Array(4);
  new DataView(epoch.buffer).setUint32(0, expect.keyEpoch);
  const fileKey = openEnvelope(wrapKey, sealed, concat(utf8('kluis/wrap/v2'), ID(expect.spaceId), epoch, ID(expect.fileId)));
  if (fileKey.length !== 32) throw new Error('wrap v2: the key is not 32 bytes');
  return { signer: s('signer'), fileKey };
}
