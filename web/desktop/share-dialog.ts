// The share dialog (issue 19 item 3): a link (expiry, download limit, optional password, purpose; then the link with a
// copy button) or a colleague (looked up first: their key's fingerprint and whether it is the one pinned before;
// a role: this file only (share:file), or a member of the whole space as viewer, editor or manager (share:member)). Every
// field is checked with the contract's schema before the request leaves.
import { check, invoke } from './bridge.js';
import { formatDate, t, type Key } from './i18n.js';
import { busy, el, errorText, field, form, input, modal, select, submit, type Field } from './ui.js';

export function openShare(folderId: string, path: string, spaceName: string): Promise<void> {
  return modal('share', t('share.title'), (body) => {
    const file = field('share-path', 'share.path', input('text', { spellcheck: 'false' }));
    file.input.value = path;
    const tabs = el('div', { class: 'segmented', role: 'tablist', 'aria-label': t('share.title') });
    const panels = el('div');
    const show = (which: 'link' | 'colleague') => {
      for (const b of tabs.querySelectorAll('button')) b.setAttribute('aria-selected', String(b.id === `share-tab-${which}`));
      panels.replaceChildren(which === 'link' ? linkPanel(folderId, file) : colleaguePanel(folderId, file, spaceName));
    };
    for (const which of ['link', 'colleague'] as const) {
      const b = el('button', { type: 'button', role: 'tab', id: `share-tab-${which}` }, t(`share.tab.${which}`));
      b.addEventListener('click', () => show(which));
      tabs.append(b);
    }
    body.append(file.wrap, tabs, panels);
    show('link');
  });
}

function fail(f: Field<HTMLElement>, key: Key): void {
  f.problem(t(key));
  f.input.focus();
}

function linkPanel(folderId: string, file: Field): HTMLElement {
  const days = field('share-days', 'share.expires', input('number', { min: '1', max: '90', inputmode: 'numeric' }));
  days.input.value = '7';
  const limit = field('share-limit', 'share.limit', input('number', { min: '1', max: '10000', inputmode: 'numeric', placeholder: t('share.limit.none') }));
  const password = field('share-password', 'share.password', input('password', { autocomplete: 'new-password' }));
  const purpose = field('share-purpose', 'share.purpose', input('text'), 'share.purpose.hint');
  const problem = el('p', { class: 'problem', id: 'share-problem', role: 'alert' });
  const result = el('div', { id: 'share-result' });
  const go = submit('share.create', 'share-create');
  const f = form('share-link-form', async () => {
    for (const x of [file, days, limit, password, purpose]) x.problem(null);
    problem.textContent = '';
    const request = {
      folderId, path: file.input.value.trim(), expiresDays: Number(days.input.value),
      maxDownloads: limit.input.value.trim() ? Number(limit.input.value) : null,
      password: password.input.value ? password.input.value : null, purpose: purpose.input.value.trim(),
    };
    const ok = check('share:link', request);
    if (!ok.ok) {
      if (ok.field === 'path') return void (file.problem(t('err.field', { message: ok.message })), file.input.focus());
      if (ok.field === 'expiresDays') return fail(days, 'share.badDays');
      if (ok.field === 'maxDownloads') return fail(limit, 'share.badLimit');
      if (ok.field === 'purpose') return fail(purpose, 'share.badPurpose');
      return void (problem.textContent = t('err.field', { message: ok.message }));
    }
    const r = await busy(go, () => invoke('share:link', request));
    if (!r.ok) return void (problem.textContent = errorText(r.error));
    password.input.value = '';
    const link = el('input', { type: 'text', readonly: '', id: 'share-link', 'aria-label': t('share.tab.link') }) as HTMLInputElement;
    link.value = r.value.link;
    const copy = el('button', { type: 'button', class: 'secondary', id: 'share-copy' }, t('share.copy'));
    const copied = el('span', { class: 'ok', id: 'share-copied', role: 'status' });
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(link.value);
      } catch {
        link.select();
        document.execCommand('copy');
      }
      copied.textContent = t('share.copied');
    });
    const row = el('div', { class: 'row grow' });
    row.append(link, copy);
    result.replaceChildren(el('p', { class: 'ok' }, t(request.password ? 'share.createdPassword' : 'share.created', { date: formatDate(r.value.expiresAt) })), row, copied);
    link.focus();
    link.select();
  });
  const row = el('div', { class: 'row' });
  row.append(days.wrap, limit.wrap);
  f.append(row, password.wrap, purpose.wrap, problem, go);
  const panel = el('div', { role: 'tabpanel', id: 'share-panel-link', 'aria-labelledby': 'share-tab-link' });
  panel.append(f, result);
  return panel;
}

function colleaguePanel(folderId: string, file: Field, spaceName: string): HTMLElement {
  const email = field('share-email', 'share.email', input('email'));
  // This file only (share:file, read-only), or the whole space with a role (share:member, a manager's act).
  const role = field('share-role', 'share.role', select([
    ['file', t('share.role.file')],
    ...(['viewer', 'editor', 'manager'] as const).map((r): [string, string] => [r, t(`share.role.space.${r}`, { space: spaceName })]),
  ]));
  const problem = el('p', { class: 'problem', id: 'share-colleague-problem', role: 'alert' });
  const found = el('div', { id: 'share-colleague' });
  const look = submit('share.lookup', 'share-lookup', 'secondary');
  const f = form('share-colleague-form', async () => {
    email.problem(null);
    problem.textContent = '';
    found.replaceChildren();
    const request = { email: email.input.value.trim() };
    const ok = check('share:colleague', request);
    if (!ok.ok) return void (email.problem(t('err.field', { message: ok.message })), email.input.focus());
    const r = await busy(look, () => invoke('share:colleague', request));
    if (!r.ok) return void (problem.textContent = errorText(r.error));
    const send = el('button', { type: 'button', class: 'primary', id: 'share-send' }, t('share.send')) as HTMLButtonElement;
    const done = el('p', { class: 'ok', id: 'share-sent', role: 'status' });
    send.addEventListener('click', async () => {
      done.textContent = '';
      const which = role.input.value;
      if (which !== 'file') {
        const req = { folderId, email: r.value.email, role: which as 'viewer' | 'editor' | 'manager' };
        const m = await busy(send, () => invoke('share:member', req));
        return void (done.textContent = m.ok ? t('share.added', { email: r.value.email, space: m.value.spaceName }) : errorText(m.error));
      }
      const req = { folderId, path: file.input.value.trim(), email: r.value.email, role: 'viewer' as const };
      const c = check('share:file', req);
      if (!c.ok) return void (file.problem(t('err.field', { message: c.message })), file.input.focus());
      const s = await busy(send, () => invoke('share:file', req));
      done.textContent = s.ok ? t('share.sent', { email: r.value.email }) : errorText(s.error);
    });
    found.append(
      el('p', { class: 'label' }, t('share.fp')),
      el('p', { class: 'secret fingerprint', id: 'share-fingerprint' }, r.value.fingerprint),
      el('p', { class: r.value.pinned === 'changed' ? 'problem' : 'meta', id: 'share-pinned' }, t(`share.pinned.${r.value.pinned}`)),
      send, done,
    );
  });
  f.append(email.wrap, role.wrap, problem, look);
  const panel = el('div', { role: 'tabpanel', id: 'share-panel-colleague', 'aria-labelledby': 'share-tab-colleague' });
  panel.append(f, found);
  return panel;
}
