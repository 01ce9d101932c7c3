// Small DOM helpers for Kluis's pages (link page, admin console). No innerHTML anywhere: text goes in as text nodes.
import { LANG_NAMES, LANGS, lang, type Lang } from './i18n.js';

export function el(tag: string, attrs: Record<string, string> = {}, text?: string): HTMLElement {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

export function button(label: string, onClick: () => void, kind: 'primary' | 'secondary' | 'lang' | 'small' | 'danger', id?: string): HTMLButtonElement {
  const b = el('button', { type: 'button', class: kind, ...(id ? { id } : {}) }, label) as HTMLButtonElement;
  b.addEventListener('click', onClick);
  return b;
}

/** Moves focus to the card's heading, so a screen reader reads the new state (the heading has tabindex=-1). */
export function focusTitle(): void {
  document.getElementById('title')?.focus({ preventScroll: true });
}

/** The polite live region under the card: progress and "checking" announcements. */
export function setStatus(text: string): void {
  const s = document.getElementById('status');
  if (s && s.textContent !== text) s.textContent = text;
}

/** The language switch's buttons (NL FR EN), the current one pressed; each named in its own language. */
export function langButtons(onSwitch: (l: Lang) => void): HTMLButtonElement[] {
  return LANGS.map((l) => {
    const b = button(l.toUpperCase(), () => onSwitch(l), 'lang');
    b.setAttribute('lang', l);
    b.setAttribute('aria-pressed', String(l === lang()));
    b.setAttribute('aria-label', LANG_NAMES[l]);
    return b;
  });
}
