// Canonical JSON (docs/crypto.md §"Canonical JSON"): the byte string that is signed and encrypted.
// Rules: objects with keys sorted by UTF-16 code units (all protocol keys are ASCII, so this is byte order),
// no whitespace, strings escaped exactly as ECMAScript JSON.stringify does (only `"`, `\` and U+0000–U+001F
// are escaped; lone surrogates are refused), numbers only as safe integers in plain decimal, no `undefined`.
//
// Built as one string by concatenation (V8 joins the pieces once, when the text is encoded), with plain loops: every
// manifest and wrap a sync makes goes through here (issue 22: the array of pieces and the closures per element were
// about a tenth of the garbage of a first sync of 10,000 small files).
import { CryptoError, ErrorCode } from './errors.js';
import { utf8 } from './encoding.js';

export type CanonicalValue = null | boolean | number | string | CanonicalValue[] | { [key: string]: CanonicalValue };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const ANY_SURROGATE = /[\uD800-\uDFFF]/;

function fail(message: string): never {
  throw new CryptoError(ErrorCode.BadCanonicalJson, message);
}

function encodeString(s: string): string {
  // Most strings hold no surrogate at all: the lookbehind pattern runs only for those that do.
  if (ANY_SURROGATE.test(s) && LONE_SURROGATE.test(s)) fail('canonical JSON refuses lone surrogates');
  return JSON.stringify(s);
}

function encode(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return encodeString(value);
    case 'number':
      if (!Number.isSafeInteger(value)) fail('canonical JSON allows only safe integers');
      return value === 0 ? '0' : String(value); // -0 too
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let s = '[';
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) fail(`canonical JSON refuses undefined at [${i}]`);
          s += i > 0 ? `,${encode(item)}` : encode(item);
        }
        return `${s}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) fail('canonical JSON encodes plain objects only');
      const keys = Object.keys(value).sort();
      let s = '{';
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        const v = (value as Record<string, unknown>)[key];
        if (v === undefined) fail(`canonical JSON refuses undefined at "${key}"`);
        s += `${i > 0 ? ',' : ''}${encodeString(key)}:${encode(v)}`;
      }
      return `${s}}`;
    }
    default:
      return fail(`canonical JSON cannot encode ${typeof value}`);
  }
}

/** The canonical JSON text of a value. */
export function canonicalJson(value: unknown): string {
  return encode(value);
}

/** The canonical JSON of a value as UTF-8 bytes. */
export function canonicalBytes(value: unknown): Uint8Array {
  return utf8(canonicalJson(value));
}
