// The desktop window's small pieces: labelled fields with their hint and problem, error sentences for IPC answers,
// the polite live region, and a modal dialog (focus kept inside, Escape closes, focus returns to the opener). Text
// goes in as text nodes only; no inline style anywhere (the CSP has style-src 'self').
import type { IpcError } from '../../desktop/src/electron/ipc/contract.js';
import { el } from '../common/ui.js';
import { t, type Key } from './i18n.js';

export { button, el } from '../common/ui.js';

/** The sentence to show for an IPC error. */
export function errorText(error: IpcError): string {
  if (error.code === 'unknown_channel') return t('err.unknown_channel');
  if (error.code === 'no_bridge') return t('err.no_bridge');
  return t('err.generic', { message: error.message });
}

/** Says `text` in the live region at the bottom of the window (screen readers read it; sighted users see it). */
export function announce(text: string): void {
  const s = document.getElementById('status');
  if (s) s.textContent = text;
}

export interface Field<T extends HTMLElement = HTMLInputElement> {
  wrap: HTMLElement;
  input: T;
  /** Shows (or clears, with null) the field's problem, and marks the input invalid. */
  problem(text: string | null): void;
}

/** A label, an input (or select) and, under it, its hint and its problem, tied together with ids. */
export function field<T extends HTMLElement = HTMLInputElement>(id: string, label: Key, input: T, hint?: Key | string): Field<T> {
  input.id = id;
  const wrap = el('div', { class: 'field' });
  const problemEl = el('p', { class: 'problem', id: `${id}-problem`, role: 'alert' });
  const described = [`${id}-problem`];
  wrap.append(el('label', { for: id }, t(label)), input);
  if (hint) {
    wrap.append(el('p', { class: 'hint', id: `${id}-hint` }, hint.includes(' ') ? hint : t(hint as Key)));
    described.unshift(`${id}-hint`);
  }
  wrap.append(problemEl);
  input.setAttribute('aria-describedby', described.join(' '));
  return {
    wrap, input,
    problem(text) {
      problemEl.textContent = text ?? '';
      if (text) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    },
  };
}

export function input(type: string, attrs: Record<string, string> = {}): HTMLInputElement {
  return el('input', { type, autocomplete: 'off', ...attrs }) as HTMLInputElement;
}

export function select(options: [string, string][], value?: string): HTMLSelectElement {
  const s = el('select') as HTMLSelectElement;
  for (const [v, label] of options) s.append(el('option', { value: v }, label));
  if (value !== undefined) s.value = value;
  return s;
}

/** A form whose submit never navigates (form-action 'none') and runs `onSubmit` instead. */
export function form(id: string, onSubmit: () => void | Promise<void>): HTMLFormElement {
  const f = el('form', { id, novalidate: '' }) as HTMLFormElement;
  f.addEventListener('submit', (e) => {
    e.preventDefault();
    void onSubmit();
  });
  return f;
}

export function submit(label: Key, id: string, kind: 'primary' | 'secondary' | 'danger' = 'primary'): HTMLButtonElement {
  return el('button', { type: 'submit', class: kind, id }, t(label)) as HTMLButtonElement;
}

/** Disables `b` and shows "Working…" while `work` runs. */
export async function busy<T>(b: HTMLButtonElement, work: () => Promise<T>): Promise<T> {
  const label = b.textContent;
  const focused = document.activeElement === b; // a disabled button loses focus: give it back after
  b.disabled = true;
  b.textContent = t('busy');
  try {
    return await work();
  } finally {
    b.disabled = false;
    b.textContent = label;
    if (focused && b.isConnected) b.focus();
  }
}

/** Opens a modal dialog titled `title`; `build` fills its body and gets `close`. Resolves when it closes. */
export function modal(id: string, title: string, build: (body: HTMLElement, close: () => void) => void): Promise<void> {
  const opener = document.activeElement as HTMLElement | null;
  const dialog = el('dialog', { id, 'aria-labelledby': `${id}-title` }) as HTMLDialogElement;
  const head = el('div', { class: 'dialog-head' });
  const x = el('button', { type: 'button', class: 'small', id: `${id}-close` }, t('close')) as HTMLButtonElement;
  head.append(el('h2', { id: `${id}-title` }, title), x);
  const body = el('div', { class: 'dialog-body' });
  dialog.append(head, body);
  document.body.append(dialog);
  const close = () => dialog.close();
  x.addEventListener('click', close);
  build(body, close);
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      dialog.remove();
      opener?.focus({ preventScroll: true });
      resolve();
    });
    dialog.showModal();
    (body.querySelector('input, select, button') as HTMLElement | null)?.focus();
  });
}

/** Asks before an act that cannot be undone; resolves true on confirm. */
export function confirmAsk(id: string, title: string, text: string, confirm: string): Promise<boolean> {
  let yes = false;
  return modal(id, title, (body, close) => {
    body.append(el('p', {}, text));
    const row = el('div', { class: 'row end' });
    const no = el('button', { type: 'button', class: 'secondary', id: `${id}-cancel` }, t('cancel'));
    const ok = el('button', { type: 'button', class: 'danger', id: `${id}-ok` }, confirm);
    no.addEventListener('click', close);
    ok.addEventListener('click', () => {
      yes = true;
      close();
    });
    row.append(no, ok);
    body.append(row);
  }).then(() => yes);
}
