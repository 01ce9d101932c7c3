// The arrays the sync client reads files into, reused from file to file (shared/src/buffer-pool.ts). W4's 2,000
// office files were read twice in fresh arrays (the scan's hash, 1 MiB each; the upload's whole small file): 1.7 GiB
// of external memory for 1 GiB of files, and the full collections that follow it (issue 22).
import { SizeClassPool } from '@kluis/shared/hashing';

const MiB = 1024 * 1024;

/** Up to 8 MiB arrays (a small file of 4 MiB plus its spare byte); at most 16 MiB idle. */
export const readBuffers = new SizeClassPool(8 * MiB, 16 * MiB);
