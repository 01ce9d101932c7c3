// What fast-blake2b.ts loads on demand: hash-wasm's BLAKE2b alone. hash-wasm also ships each algorithm as a file of
// its own (a UMD module); this one is 16 KB and loads in about 13 ms, where the package's entry holds all its
// algorithms (270 KB, about 45 ms in a worker thread, 264 KiB more in the CLI bundle).
import blake2bOnly from 'hash-wasm/dist/blake2b.umd.min.js';

export const createBLAKE2b = blake2bOnly.createBLAKE2b;
