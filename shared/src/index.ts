export * from './errors.js';
export * from './encoding.js';
