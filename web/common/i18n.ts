// The translation machinery of Kluis's pages (the link page, the admin console): three languages, the browser's
// choice (navigator.languages) unless the visitor picks one with the switch, the choice kept in localStorage, and
// locale-aware numbers, dates and sizes. Each page keeps its own table of strings (its i18n.ts) and makes its `t`
// with translator(). Placeholders are {name}; plurals are chosen by the caller (one/other keys).

export type Lang = 'nl' | 'fr' | 'en';
export const LANGS: readonly Lang[] = ['nl', 'fr', 'en'];
/** Each language's name in itself, for the switch (read the same in every language). */
export const LANG_NAMES: Record<Lang, string> = { nl: 'Nederlands', fr: 'Français', en: 'English' };

const LOCALES: Record<Lang, string> = { nl: 'nl-BE', fr: 'fr-BE', en: 'en-GB' };
const STORE_KEY = 'kluis.lang';

let current: Lang = 'en';

/** The language to start in: a stored choice, else the first of the browser's languages we speak, else Dutch. */
export function initialLang(): Lang {
  try {
    const stored = localStorage.getItem(STORE_KEY);
    if (stored && (LANGS as string[]).includes(stored)) return stored as Lang;
  } catch {
    // storage blocked (private mode, policies): fall back to the browser's languages
  }
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = tag.toLowerCase().split('-')[0];
    if (base && (LANGS as string[]).includes(base)) return base as Lang;
  }
  return 'nl';
}

export function setLang(lang: Lang, remember = false): void {
  current = lang;
  document.documentElement.lang = lang;
  if (remember) {
    try {
      localStorage.setItem(STORE_KEY, lang);
    } catch {
      // not remembered; the switch still works for this visit
    }
  }
}

export function lang(): Lang {
  return current;
}

/** The `t` of a page: the string for `key` in the current language, with {placeholders} filled in. */
export function translator<K extends string>(tables: Record<Lang, Record<K, string>>) {
  return (key: K, vars: Record<string, string | number> = {}): string =>
    tables[current][key].replace(/\{(\w+)\}/g, (m, name: string) => (name in vars ? String(vars[name]) : m));
}

export function formatNumber(n: number): string {
  return new Intl.NumberFormat(LOCALES[current]).format(n);
}

export function formatDate(ms: number): string {
  return new Intl.DateTimeFormat(LOCALES[current], { dateStyle: 'long', timeStyle: 'short' }).format(new Date(ms));
}

/** Date and time to the second, compact (tables of events). */
export function formatDateTime(ms: number): string {
  return new Intl.DateTimeFormat(LOCALES[current], { dateStyle: 'short', timeStyle: 'medium' }).format(new Date(ms));
}

/** Bytes in binary units with the locale's decimal separator (1.5 MiB, 1,5 MiB). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const digits = u === 0 || v >= 100 ? 0 : 1;
  return `${new Intl.NumberFormat(LOCALES[current], { maximumFractionDigits: digits }).format(v)} ${units[u]}`;
}
