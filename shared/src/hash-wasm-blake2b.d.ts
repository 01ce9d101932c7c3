// The types of hash-wasm's single-algorithm BLAKE2b file (crypto/fast-blake2b-wasm.ts): the package declares its
// main entry only; this file exports the same createBLAKE2b.
declare module 'hash-wasm/dist/blake2b.umd.min.js' {
  import type { createBLAKE2b } from 'hash-wasm';
  const blake2bOnly: { createBLAKE2b: typeof createBLAKE2b };
  export default blake2bOnly;
}
