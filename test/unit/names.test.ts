// The name rule (shared/src/api/names.ts) that the server's schemas and the clients share: control characters,
// bidirectional overrides and isolates, ill-formed text and invisible-only names are refused; names in any language,
// with accents, emoji and inner spaces are kept (trimmed).
import test from 'ava';
import { CreateSpaceRequest, DeviceName, MAX_NAME_LENGTH, SpaceName, nameProblem, nameSchema } from '@kluis/shared';

const cp = (n: number) => String.fromCodePoint(n);

test('ordinary names in Dutch, French, German and other scripts, with emoji, are accepted', (t) => {
  const names = [
    'Dossiers', 'OCMW Gent — Sociale dienst', 'Café crème', 'Ève & Zoë: dossiers 2025', 'Straße', 'Łódź', 'Ærø',
    'Jeugdhulp (vertrouwelijk)', '📁 Projecten', '\u{1F468}\u200D\u{1F469}\u200D\u{1F467} Gezinnen', '❤️ Zorg', 'الملفات', 'תיקים', '書類', 'Ελληνικά', 'x',
    // Joiners and marks inside visible text are part of real writing (emoji sequences, Persian, mixed-direction text).
    'می\u200Cخواهم', 'abc\u200Ddef', 'Report \u200Fבדיקה', 'a\u00ADb',
    'y'.repeat(MAX_NAME_LENGTH),
  ];
  for (const name of names) t.is(nameProblem(name), null, JSON.stringify(name));
});

test('control characters are refused wherever they are', (t) => {
  for (const c of [0x00, 0x07, 0x09, 0x0a, 0x0d, 0x1b, 0x1f, 0x7f, 0x80, 0x85, 0x9f, 0x2028, 0x2029]) {
    for (const name of [`Doss${cp(c)}iers`, `Dossiers${cp(c)}`, `${cp(c)}Dossiers`]) {
      t.regex(nameProblem(name) ?? '', /control characters/, `U+${c.toString(16).padStart(4, '0')} in ${JSON.stringify(name)}`);
    }
  }
});

test('bidirectional embeddings, overrides and isolates are refused', (t) => {
  for (const c of [0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]) {
    t.regex(nameProblem(`factuur${cp(c)}fdp.exe`) ?? '', /bidirectional/, `U+${c.toString(16)}`);
  }
});

test('invisible-only and empty names are refused', (t) => {
  const invisible = [
    '\u200B', '\u200C', '\u200D', '\u200E', '\u200F', '\uFEFF', '\u2060', '\u200B\u200B\u200B', ' \u200B ', '\u00AD', '\u3164', '\uFE0F',
    '\u00A0', '\u2003\u3000',
  ];
  for (const name of invisible) t.truthy(nameProblem(name), JSON.stringify(name));
  for (const name of ['', ' ', '   ', '\u3000']) t.regex(nameProblem(name) ?? '', /empty/, JSON.stringify(name));
  t.regex(nameProblem('\u200B') ?? '', /visible/);
});

test('ill-formed UTF-16 (a lone surrogate) and over-long names are refused', (t) => {
  t.regex(nameProblem('Doss\uD800iers') ?? '', /Unicode/);
  t.regex(nameProblem('Doss\uDC00') ?? '', /Unicode/);
  t.regex(nameProblem('y'.repeat(MAX_NAME_LENGTH + 1)) ?? '', /at most 200/);
  t.is(nameProblem(`  ${'y'.repeat(MAX_NAME_LENGTH)}  `), null, 'surrounding spaces do not count');
  t.regex(nameProblem('abcd', 3) ?? '', /at most 3/);
});

test('the zod schemas apply the rule and trim, naming the field', (t) => {
  t.is(SpaceName.parse('  Café crème  '), 'Café crème');
  t.is(DeviceName.parse('laptop van Zoë'), 'laptop van Zoë');
  t.is(nameSchema(5).safeParse('abcdef').success, false);
  for (const bad of ['a\u202Eb', 'tab\there', '\u200B\uFEFF', '']) {
    t.false(SpaceName.safeParse(bad).success, JSON.stringify(bad));
    t.false(DeviceName.safeParse(bad).success, JSON.stringify(bad));
  }
  const r = CreateSpaceRequest.safeParse({ name: 'x\u2066y' });
  t.false(r.success);
  const issue = r.error!.issues.find((i) => i.path[0] === 'name');
  t.truthy(issue, 'the issue names the field');
  t.regex(issue!.message, /bidirectional/);
});
