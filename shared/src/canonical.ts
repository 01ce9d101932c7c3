// Canonical JSON (docs/crypto.md §"Canonical JSON"): the byte string that is signed and encrypted.
// Rules: objects with keys sorted by UTF-16 code units (all protocol keys are ASCII, so this is byte order),
// no whitespace, strings escaped exactly as ECMAScript JSON.stringify does (only `"`, `\` and U+0000–U+001F
// are escaped; lone surrogates are refused), numbers only as safe integers in plain decimal, no `undefined`.
import { CryptoError, ErrorCode } from './errors.js';
import { utf8 } from './encoding.js';

export type CanonicalValue = null | boolean | number | string | CanonicalValue[] | { [key: string]: CanonicalValue };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function fail(message: string): never {
  throw new CryptoError(ErrorCode.BadCanonicalJson, message);
}

function encode(value: unknown, out: string[]): void {
  if (value === null) {
    out.push('null');
  } else if (typeof value === 'boolean') {
    out.push(value ? 'true' : 'false');
  } else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) fail('canonical JSON allows only safe integers');
    out.push(Object.is(value, -0) ? '0' : String(value));
  } else if (typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) fail('canonical JSON refuses lone surrogates');
    out.push(JSON.stringify(value));
  } else if (Array.isArray(value)) {
    out.push('[');
    value.forEach((item, i) => {
      if (i > 0) out.push(',');
      encode(item, out);
    });
    out.push(']');
  } else if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) fail('canonical JSON encodes plain objects only');
    const keys = Object.keys(value).sort();
    out.push('{');
    keys.forEach((key, i) => {
      const v = (value as Record<string, unknown>)[key];
      if (v === undefined) fail(`canonical JSON refuses undefined at "${key}"`);
      if (i > 0) out.push(',');
      encode(key, out);
      out.push(':');
      encode(v, out);
    });
    out.push('}');
  } else {
    fail(`canonical JSON cannot encode ${typeof value}`);
  }
}

/** The canonical JSON text of a value. */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  encode(value, out);
  return out.join('');
}

/** The canonical JSON of a value as UTF-8 bytes. */
export function canonicalBytes(value: unknown): Uint8Array {
  return utf8(canonicalJson(value));
}
