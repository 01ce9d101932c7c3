// A JSON parameter for sqlite as UTF-8 bytes (bulk-insert.ts, in-values.ts; issue 22). node-sqlite3 copies a string
// parameter out of V8 on the main thread at several nanoseconds per character (flattened, measured, converted to
// UTF-8, copied again), a Buffer at memcpy's speed, and Buffer.from encodes a string at about 0.4 ns per byte. The
// statement reads the parameter with `CAST(? AS TEXT)`: sqlite would take a bare BLOB for its binary JSONB format.

/** `value` as JSON text in UTF-8 bytes, for a `json_each(CAST(? AS TEXT))` parameter. */
export function jsonBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}
