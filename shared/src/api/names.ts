// Names people give things (spaces, organisations, devices) are shown to other people, in lists, logs and audit
// exports. The one rule for all of them lives here, so that the server (zod schemas) and the clients (before they
// make keys) refuse the same text: no control characters, no bidirectional overrides or isolates (they reorder what
// a reader sees: U+202E before "fdp.exe" shows it as "exe.pdf"), no ill-formed UTF-16, and something visible.
// Everything else is accepted: accents, any script, emoji (with their zero-width joiners and variation selectors)
// and inner spaces.
import * as z from 'zod';

/** Longest name, in UTF-16 code units (as JavaScript counts `length`), after trimming. */
export const MAX_NAME_LENGTH = 200;

// C0, DEL and C1 (\p{Cc}: tab, line feed, escape, NEL ...) and the Unicode line and paragraph separators.
const CONTROL = /[\p{Cc}\u2028\u2029]/u;
// Embeddings and overrides (LRE, RLE, PDF, LRO, RLO) and isolates (LRI, RLI, FSI, PDI).
const BIDI_CONTROL = /[\u202A-\u202E\u2066-\u2069]/u;
// A lone surrogate: text that is not Unicode (stored, it would turn into U+FFFD).
const LONE_SURROGATE = /\p{Cs}/u;
// Characters that show nothing on their own: white space, format characters and the other default-ignorable code
// points (zero-width space and joiners, the left-to-right and right-to-left marks U+200B–U+200F, word joiner U+2060,
// BOM U+FEFF, soft hyphen, Hangul fillers, variation selectors, tags ...). Allowed inside a name, never as all of it.
const INVISIBLE_ONLY = /^[\p{White_Space}\p{Cf}\p{Default_Ignorable_Code_Point}]*$/u;

/**
 * What is wrong with `text` as a name (a message to put after the field's name), or null when it is acceptable.
 * Leading and trailing white space does not count (callers store the trimmed text); control characters count
 * wherever they are.
 */
export function nameProblem(text: string, max = MAX_NAME_LENGTH): string | null {
  if (LONE_SURROGATE.test(text)) return 'must be well-formed Unicode text';
  if (CONTROL.test(text)) return 'must not contain control characters (tabs, line breaks, escapes)';
  if (BIDI_CONTROL.test(text)) return 'must not contain bidirectional override or isolate characters (U+202A–U+202E, U+2066–U+2069)';
  const trimmed = text.trim();
  if (trimmed.length === 0) return 'must not be empty';
  if (trimmed.length > max) return `at most ${max} characters`;
  if (INVISIBLE_ONLY.test(trimmed)) return 'must contain visible characters, not only spaces or invisible ones';
  return null;
}

/** A name field: refused with nameProblem's message, otherwise trimmed. */
export function nameSchema(max = MAX_NAME_LENGTH) {
  return z
    .string()
    .superRefine((text, ctx) => {
      const problem = nameProblem(text, max);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .transform((text) => text.trim());
}
