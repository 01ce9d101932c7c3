// FastCDC content-defined chunking (docs/architecture.md §3, docs/crypto.md §10).
export { CHUNK_MIN, CHUNK_AVG, CHUNK_MAX, MASK_S, MASK_L, GEAR, cutPoint, chunkBoundaries } from './fastcdc.js';
export { chunkStream, chunkStreamGuided, type ChunkGuide } from './stream.js';
