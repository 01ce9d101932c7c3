// The console's confirmation: a modal <dialog> (focus kept inside, Escape cancels, focus returns to the button that
// opened it) that says in full what an act does before it is done. Used for acts a native confirm() cannot explain
// (a remote wipe and its limits, offboarding and its window) and for a name to type (a domain).
import { el } from '../common/ui.js';
import { t } from './i18n.js';

export interface Ask {
  title: string;
  /** paragraphs; a line starting with "• " joins a list */
  lines: string[];
  confirm: string;
  danger?: boolean;
  /** a text field to fill in (a name), with its label and first value */
  input?: { label: string; value: string };
}

/** Opens the dialog; resolves with the typed text ('' without a field) on confirm, null on cancel. */
export function ask(a: Ask): Promise<string | null> {
  const opener = document.activeElement as HTMLElement | null;
  const dialog = el('dialog', { id: 'confirm', 'aria-labelledby': 'confirm-title' }) as HTMLDialogElement;
  const form = el('form', { method: 'dialog' });
  form.append(el('h2', { id: 'confirm-title' }, a.title));
  let list: HTMLElement | null = null;
  for (const line of a.lines) {
    if (line.startsWith('• ')) {
      if (!list) form.append((list = el('ul', { class: 'limits' })));
      list.append(el('li', {}, line.slice(2)));
    } else {
      list = null;
      form.append(el('p', {}, line));
    }
  }
  let input: HTMLInputElement | null = null;
  if (a.input) {
    input = el('input', { id: 'confirm-input', type: 'text', required: '', maxlength: '100', autocomplete: 'off' }) as HTMLInputElement;
    input.value = a.input.value;
    form.append(el('label', { for: 'confirm-input' }, a.input.label), input);
  }
  const cancel = el('button', { type: 'button', class: 'secondary', id: 'confirm-cancel' }, t('dialog.cancel'));
  const ok = el('button', { type: 'submit', class: a.danger ? 'danger-strong' : 'primary', id: 'confirm-ok' }, a.confirm);
  form.append(el('div', { class: 'dialog-buttons' }, undefined), el('p', { class: 'problem', id: 'confirm-problem', role: 'alert' }));
  form.querySelector('.dialog-buttons')!.append(cancel, ok);
  dialog.append(form);
  document.body.append(dialog);
  return new Promise((resolve) => {
    let answer: string | null = null;
    cancel.addEventListener('click', () => dialog.close());
    form.addEventListener('submit', (e) => {
      if (input && !input.value.trim()) {
        e.preventDefault();
        form.querySelector('#confirm-problem')!.textContent = t('dialog.empty');
        input.focus();
        return;
      }
      answer = input ? input.value.trim() : '';
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      opener?.focus({ preventScroll: true });
      resolve(answer);
    });
    dialog.showModal();
    (input ?? cancel).focus();
  });
}
