export * from './errors.js';
export * from './encoding.js';
export * from './canonical.js';
export * from './paths.js';
export * from './crypto/index.js';
export * from './chunking/index.js';
export * from './api/schemas.js';
export * from './api/frames.js';
