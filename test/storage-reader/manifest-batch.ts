// docs/crypto.md §8.1, batch-signed manifests, read with libsodium only: the layout after the signer's key and the
// batch signature, the salted leaf, the RFC 9162 inclusion proof up to a root, and the signature over the batch
// statement rebuilt from that root.
import { rootFromProof } from './batch-wrap.js';
import { canonical, concat, sodium, utf8, verifySigned } from './primitives.js';

const u32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, false);

/** The signer and the body of a batch-signed manifest's plaintext (byte 96 is 0x03), or an error naming what failed. */
export function openBatchManifestPlain(plain: Uint8Array, fileId: Uint8Array, versionId: Uint8Array): { signer: Uint8Array; body: Uint8Array } {
  if (plain.length < 106 || plain[96] !== 0x03) throw new Error('manifest v3: not batch-signed');
  const index = u32(plain, 97);
  const size = u32(plain, 101);
  const k = plain[105]!;
  if (k > 64 || plain.length < 106 + 32 * k + 16) throw new Error('manifest v3: bad proof length');
  const proof = Array.from({ length: k }, (_, j) => plain.slice(106 + 32 * j, 138 + 32 * j));
  const salt = plain.subarray(106 + 32 * k, 122 + 32 * k);
  const body = plain.subarray(122 + 32 * k);
  const signer = plain.subarray(0, 32);
  const leaf = sodium.crypto_hash_sha256(concat(new Uint8Array([0]), utf8('kluis/manifest-leaf/v3'), salt, fileId, versionId, body));
  const root = rootFromProof(index, size, leaf, proof);
  if (!root) throw new Error('manifest v3: the proof does not fit its batch');
  const b64 = (x: Uint8Array): string => sodium.to_base64(x, sodium.base64_variants.URLSAFE_NO_PADDING);
  const statement = canonical({ v: 3, kind: 'manifest-batch', signer: b64(signer), size, root: b64(root) });
  if (!verifySigned('kluis/manifest-batch/v3', utf8(statement), plain.subarray(32, 96), signer)) throw new Error('manifest v3: bad batch signature');
  return { signer, body };
}

