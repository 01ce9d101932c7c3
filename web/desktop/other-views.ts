// The conflicts, devices and settings screens (issue 19 item 3). Conflicts: per folder, each conflicted file with
// "open both" (folders:open on the file and its copy) and "keep mine"/"keep theirs"/"keep both" (conflicts:resolve,
// naming the copy). Devices: the account's devices, revoke with a confirmation. Settings: bandwidth limits, start at
// login, notifications, language, and the account (fingerprint, how keys are kept, sign out).
import type { FolderStatus, Response, Settings } from '../../desktop/src/electron/ipc/contract.js';
import { check, invoke } from './bridge.js';
import { LANGS, formatDateTime, lang, t } from './i18n.js';
import { LANG_NAMES } from '../common/i18n.js';
import { announce, busy, button, confirmAsk, el, errorText, field, form, input, select, submit } from './ui.js';

function heading(key: 'conflicts.title' | 'devices.title' | 'settings.title', lead?: 'conflicts.lead' | 'devices.lead'): HTMLElement[] {
  return [el('h1', { id: 'title', tabindex: '-1' }, t(key)), ...(lead ? [el('p', { class: 'lead' }, t(lead))] : [])];
}

export async function renderConflicts(view: HTMLElement, folders: FolderStatus[]): Promise<void> {
  const list = el('div', { id: 'conflicts' });
  view.replaceChildren(...heading('conflicts.title', 'conflicts.lead'), list);
  let any = false;
  for (const f of folders) {
    const r = await invoke('conflicts:list', { folderId: f.folderId });
    if (!r.ok) {
      list.append(el('p', { class: 'problem', role: 'alert' }, `${f.spaceName}: ${errorText(r.error)}`));
      continue;
    }
    if (r.value.conflicts.length === 0) continue;
    any = true;
    const ul = el('ul', { class: 'list', 'aria-label': f.spaceName });
    r.value.conflicts.forEach((c, i) => {
      const li = el('li', { class: 'item conflict', id: `conflict-${f.folderId}-${i}` });
      const text = el('div');
      text.append(el('strong', {}, c.path), el('span', { class: 'meta' }, t('conflicts.other', { author: c.otherAuthor, date: formatDateTime(c.at) })));
      const acts = el('div', { class: 'actions' });
      // copyPath names this copy: a file can have more than one (main refuses to guess which).
      const resolve = (keep: 'mine' | 'theirs' | 'both') => async () => {
        const a = await invoke('conflicts:resolve', { folderId: f.folderId, path: c.path, keep, copyPath: c.copyPath });
        if (!a.ok) return announce(errorText(a.error));
        announce(t(keep === 'both' ? 'conflicts.keptBoth' : 'conflicts.resolved', { path: c.path }));
        await renderConflicts(view, folders);
      };
      acts.append(
        button(t('conflicts.openBoth'), async () => {
          for (const p of [c.path, c.copyPath]) {
            const a = await invoke('folders:open', { folderId: f.folderId, path: p });
            if (!a.ok) return announce(errorText(a.error));
          }
        }, 'small', `conflict-${f.folderId}-${i}-open`),
        button(t('conflicts.keepMine'), resolve('mine'), 'small', `conflict-${f.folderId}-${i}-mine`),
        button(t('conflicts.keepTheirs'), resolve('theirs'), 'small', `conflict-${f.folderId}-${i}-theirs`),
        button(t('conflicts.keepBoth'), resolve('both'), 'small', `conflict-${f.folderId}-${i}-both`),
      );
      li.append(text, acts);
      ul.append(li);
    });
    list.append(el('h2', {}, f.spaceName), ul);
  }
  if (!any && !list.querySelector('.problem')) list.append(el('p', { class: 'empty', id: 'conflicts-none' }, t('conflicts.none')));
}

export async function renderDevices(view: HTMLElement): Promise<void> {
  const list = el('ul', { class: 'list', id: 'devices' });
  view.replaceChildren(...heading('devices.title', 'devices.lead'), list);
  const r = await invoke('devices:list', {});
  if (!r.ok) return void list.replaceWith(el('p', { class: 'problem', id: 'devices-problem', role: 'alert' }, errorText(r.error)));
  const rows = r.value.devices.map((d: Response<'devices:list'>['devices'][number]) => {
    const li = el('li', { class: 'item', id: `device-${d.deviceId}` });
    const text = el('div');
    text.append(el('strong', {}, d.name), el('span', { class: 'meta' }, t('devices.lastSeen', { date: formatDateTime(d.lastSeenAt) })));
    li.append(text);
    if (d.current) li.append(el('span', { class: 'badge' }, t('devices.this')));
    else if (d.revoked) li.append(el('span', { class: 'badge muted' }, t('devices.revoked')));
    else {
      li.append(button(t('devices.revoke'), async () => {
        if (!(await confirmAsk('revoke', t('devices.revoke'), t('devices.revokeAsk', { name: d.name }), t('devices.revoke')))) return;
        const a = await invoke('devices:revoke', { deviceId: d.deviceId });
        if (!a.ok) return announce(errorText(a.error));
        announce(t('devices.done', { name: d.name }));
        await renderDevices(view);
      }, 'small', `device-${d.deviceId}-revoke`));
    }
    return li;
  });
  list.replaceChildren(...rows);
}

/** KiB/s typed by a person → bytes/s (null: no limit); undefined when it is not a number. */
function limitOf(text: string): number | null | undefined {
  if (!text.trim()) return null;
  const n = Number(text);
  return Number.isFinite(n) ? Math.round(n * 1024) : undefined;
}

export interface SettingsContext {
  account: Response<'app:status'>['account'];
  keysProtected: Response<'app:status'>['keysProtected'];
  onLanguage: (l: Settings['language']) => void;
  onLogout: () => void;
}

export async function renderSettings(view: HTMLElement, ctx: SettingsContext): Promise<void> {
  view.replaceChildren(...heading('settings.title'));
  const r = await invoke('settings:get', {});
  const problem = el('p', { class: 'problem', id: 'settings-problem', role: 'alert' }, r.ok ? '' : errorText(r.error));
  const s: Settings = r.ok ? r.value : { language: 'nl', startAtLogin: false, uploadLimit: null, downloadLimit: null, notifications: true };
  const up = field('set-upload', 'settings.upload', input('number', { min: '16', inputmode: 'numeric' }), 'settings.limit.hint');
  const down = field('set-download', 'settings.download', input('number', { min: '16', inputmode: 'numeric' }), 'settings.limit.hint');
  up.input.value = s.uploadLimit === null ? '' : String(Math.round(s.uploadLimit / 1024));
  down.input.value = s.downloadLimit === null ? '' : String(Math.round(s.downloadLimit / 1024));
  const check1 = (id: string, key: 'settings.startAtLogin' | 'settings.notifications', on: boolean) => {
    const box = el('input', { type: 'checkbox', id }) as HTMLInputElement;
    box.checked = on;
    const label = el('label', { class: 'check', for: id });
    label.append(box, document.createTextNode(t(key)));
    return { label, box };
  };
  const login = check1('set-login', 'settings.startAtLogin', s.startAtLogin);
  const notes = check1('set-notifications', 'settings.notifications', s.notifications);
  // The language the window shows (the system's, or the one chosen): main's default ('nl') is not a choice the person
  // made, and saving a limit must not switch the window to it.
  const language = field('set-language', 'settings.language', select(LANGS.map((l) => [l, LANG_NAMES[l]]), lang()));
  const saved = el('p', { class: 'ok', id: 'settings-saved', role: 'status' });
  const go = submit('settings.save', 'settings-save');
  const f = form('settings-form', async () => {
    up.problem(null);
    down.problem(null);
    saved.textContent = '';
    problem.textContent = '';
    const uploadLimit = limitOf(up.input.value);
    const downloadLimit = limitOf(down.input.value);
    if (uploadLimit === undefined) return void (up.problem(t('settings.badLimit')), up.input.focus());
    if (downloadLimit === undefined) return void (down.problem(t('settings.badLimit')), down.input.focus());
    const request = { uploadLimit, downloadLimit, startAtLogin: login.box.checked, notifications: notes.box.checked, language: language.input.value as Settings['language'] };
    const ok = check('settings:set', request);
    if (!ok.ok) {
      const target = ok.field === 'downloadLimit' ? down : up;
      return void (target.problem(t('settings.badLimit')), target.input.focus());
    }
    const a = await busy(go, () => invoke('settings:set', request));
    if (!a.ok) return void (problem.textContent = errorText(a.error));
    saved.textContent = t('settings.saved');
    ctx.onLanguage(a.value.language);
  });
  const limits = el('div', { class: 'row' });
  limits.append(up.wrap, down.wrap);
  f.append(limits, login.label, notes.label, language.wrap, problem, go, saved);
  const account = el('section', { class: 'card', 'aria-labelledby': 'account-title' });
  account.append(el('h2', { id: 'account-title' }, t('settings.account')));
  if (ctx.account) account.append(el('p', {}, `${ctx.account.email} · ${ctx.account.server}`), el('p', { class: 'secret fingerprint', id: 'settings-fingerprint' }, ctx.account.fingerprint));
  account.append(el('p', { class: 'meta', id: 'settings-keys' }, t(`settings.keys.${ctx.keysProtected}`)));
  const out = button(t('settings.logout'), async () => {
    const a = await busy(out, () => invoke('account:logout', {}));
    if (!a.ok) return announce(errorText(a.error));
    ctx.onLogout();
  }, 'secondary', 'settings-logout');
  account.append(out);
  const card = el('section', { class: 'card' });
  card.append(f);
  view.append(card, account);
}
