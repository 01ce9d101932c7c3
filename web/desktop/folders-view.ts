// The folders screen (issue 19 item 3): one card per synced folder with its state and live progress (files and
// bytes to go, speed, time left), pause/resume, open, share, versions and stop syncing; the form that adds a folder
// to a space or to a new space; and the session's activity feed. Status events update the cards in place, so focus
// and what the person is typing stay where they are.
import type { AppEvent, FolderStatus } from '../../desktop/src/electron/ipc/contract.js';
import { check, invoke } from './bridge.js';
import { formatBytes, formatDateTime, formatNumber, plural, t, formatDuration, type Key } from './i18n.js';
import { openShare } from './share-dialog.js';
import { announce, busy, button, confirmAsk, el, errorText, field, form, input, select, submit } from './ui.js';
import { openVersions } from './versions-dialog.js';

export type Activity = Extract<AppEvent, { type: 'activity' }>;

const CLASSES = ['internal', 'confidential', 'personal', 'social-personal', 'medical', 'public'] as const;

function folderName(f: FolderStatus): string {
  return f.path.split(/[\\/]/).filter(Boolean).pop() ?? f.path;
}

/** The line under a folder's name: what it is doing, with numbers while it syncs. */
function progressLine(f: FolderStatus): string {
  if (f.state === 'error' && f.error) return f.error.message;
  if (f.state === 'syncing' && (f.pendingFiles > 0 || f.pendingBytes > 0)) {
    // every file read, the last batches still going out: bytes only
    const bytes = formatBytes(f.pendingBytes);
    const parts = [f.pendingFiles === 0 ? t('folder.pending.bytes', { bytes }) : f.pendingFiles === 1 ? t('folder.pending.one', { bytes }) : t('folder.pending', { files: formatNumber(f.pendingFiles), bytes })];
    if (f.rate !== null) parts.push(t('folder.speed', { rate: formatBytes(f.rate) }));
    if (f.etaSeconds !== null) parts.push(t('folder.eta', { time: formatDuration(f.etaSeconds) }));
    return parts.join(' · ');
  }
  if (f.state === 'syncing') return t('folder.looking');
  return f.lastSyncedAt !== null ? t('folder.lastSynced', { date: formatDateTime(f.lastSyncedAt) }) : t('folder.never');
}

function makeCard(f: FolderStatus, refresh: () => void): HTMLElement {
  const id = f.folderId;
  const card = el('article', { class: 'folder', id: `folder-${id}`, 'aria-labelledby': `folder-${id}-name` });
  const head = el('div', { class: 'folder-head' });
  head.append(el('h3', { id: `folder-${id}-name` }, folderName(f)), el('span', { class: 'badge', id: `folder-${id}-state` }));
  const bar = el('progress', { id: `folder-${id}-progress`, max: '1', 'aria-labelledby': `folder-${id}-line` }) as HTMLProgressElement;
  const toggle = button('', () => void pauseOrResume(card, toggle, refresh), 'small', `folder-${id}-toggle`);
  const actions = el('div', { class: 'actions' });
  actions.append(
    toggle,
    button(t('folder.open'), () => void act(invoke('folders:open', { folderId: id })), 'small', `folder-${id}-open`),
    button(t('folder.share'), () => void openShare(card.dataset.folderId!, '', card.dataset.spaceName!), 'small', `folder-${id}-share`),
    button(t('folder.versions'), () => void openVersions(card.dataset.folderId!, ''), 'small', `folder-${id}-versions`),
    button(t('folder.remove'), () => void remove(card, refresh), 'small', `folder-${id}-remove`),
  );
  card.append(head, el('p', { class: 'meta path', id: `folder-${id}-path` }), el('p', { class: 'line', id: `folder-${id}-line` }), bar, el('p', { class: 'meta', id: `folder-${id}-conflicts` }), actions);
  updateCard(card, f);
  return card;
}

/** Shows `f` on its card (the only place a card's text changes). */
export function updateCard(card: HTMLElement, f: FolderStatus): void {
  const id = f.folderId;
  card.dataset.folderId = id;
  card.dataset.state = f.state;
  card.dataset.name = folderName(f);
  card.dataset.spaceName = f.spaceName;
  card.dataset.path = f.path;
  const q = (s: string) => card.querySelector(`#folder-${id}-${s}`)!;
  q('state').textContent = t(`state.${f.state}` as Key);
  q('path').textContent = `${f.spaceName} · ${f.path}`;
  q('line').textContent = progressLine(f);
  const bar = q('progress') as HTMLProgressElement;
  bar.hidden = f.state !== 'syncing';
  if (f.state === 'syncing') bar.removeAttribute('value');
  q('conflicts').textContent = f.conflicts > 0 ? plural('folder.conflicts', f.conflicts) : '';
  const toggle = q('toggle') as HTMLButtonElement;
  toggle.textContent = t(f.state === 'paused' ? 'folder.resume' : 'folder.pause');
}

async function act(answer: Promise<{ ok: boolean; error?: { code: string; message: string } }>): Promise<boolean> {
  const r = await answer;
  if (!r.ok && r.error) announce(errorText(r.error));
  return r.ok;
}

async function pauseOrResume(card: HTMLElement, b: HTMLButtonElement, refresh: () => void): Promise<void> {
  const folderId = card.dataset.folderId!;
  const paused = card.dataset.state === 'paused';
  const r = await busy(b, () => invoke(paused ? 'folders:resume' : 'folders:pause', { folderId }));
  if (!r.ok) return announce(errorText(r.error));
  updateCard(card, r.value);
  announce(t(paused ? 'folder.resumed' : 'folder.paused', { name: card.dataset.name! }));
  refresh();
}

async function remove(card: HTMLElement, refresh: () => void): Promise<void> {
  const name = card.dataset.name!;
  if (!(await confirmAsk('remove', t('folder.remove'), t('folder.removeAsk', { name }), t('folder.remove')))) return;
  // The engine stops; nothing is deleted: say where the files are.
  if (!(await act(invoke('folders:remove', { folderId: card.dataset.folderId! })))) return;
  announce(t('folder.removed', { name, path: card.dataset.path! }));
  refresh();
}

/** Draws or updates the folder cards in `list` (kept in the order main sends them). */
export function showFolders(list: HTMLElement, folders: FolderStatus[], refresh: () => void): void {
  if (folders.length === 0) {
    list.replaceChildren(el('p', { class: 'empty', id: 'folders-empty' }, t('folders.empty')));
    return;
  }
  const cards = folders.map((f) => {
    const existing = list.querySelector<HTMLElement>(`#folder-${CSS.escape(f.folderId)}`);
    if (existing) {
      updateCard(existing, f);
      return existing;
    }
    return makeCard(f, refresh);
  });
  const same = cards.length === list.children.length && cards.every((c, i) => list.children[i] === c);
  if (!same) list.replaceChildren(...cards);
}

/** The add-a-folder form, folded unless `open` (no folder yet): a folder (typed or chosen), and a space or a new one. */
export function addFolderForm(refresh: () => void, open: boolean): HTMLElement {
  const box = el('details', { class: 'card add', id: 'add', ...(open ? { open: '' } : {}) });
  const summary = el('summary', { id: 'add-toggle' });
  summary.append(el('h2', { id: 'add-title' }, t('folders.add')));
  box.append(summary);
  const path = field('add-path', 'folders.path', input('text', { spellcheck: 'false' }));
  const choose = button(t('folders.choose'), async () => {
    const r = await invoke('folders:choose', {});
    if (!r.ok) return announce(errorText(r.error));
    if (r.value.path) path.input.value = r.value.path;
    path.input.focus();
  }, 'secondary', 'add-choose');
  const pathRow = el('div', { class: 'row grow' });
  pathRow.append(path.wrap, choose);
  const space = field('add-space', 'folders.space', select([['', '—']]));
  const newName = field('add-new-space', 'folders.newSpace.name', input('text'));
  const cls = field('add-class', 'folders.classification', select(CLASSES.map((c) => [c, t(`class.${c}`)])));
  const fresh = el('fieldset', { class: 'new-space' });
  fresh.append(el('legend', {}, t('folders.newSpace')), newName.wrap, cls.wrap);
  const problem = el('p', { class: 'problem', id: 'add-problem', role: 'alert' });
  const go = submit('folders.addSubmit', 'add-submit');
  const f = form('add-form', async () => {
    for (const x of [path, space, newName]) x.problem(null);
    problem.textContent = '';
    const p = path.input.value.trim();
    if (!p) return void (path.problem(t('folders.noPath')), path.input.focus());
    const request = newName.input.value.trim()
      ? { path: p, space: { newSpaceName: newName.input.value.trim(), classification: cls.input.value as (typeof CLASSES)[number] } }
      : { path: p, space: { spaceId: space.input.value } };
    const ok = check('folders:add', request);
    if (!ok.ok) {
      const target = ok.field.startsWith('space') ? (newName.input.value.trim() ? newName : space) : path;
      return void (target.problem(t('err.field', { message: ok.message })), target.input.focus());
    }
    const r = await busy(go, () => invoke('folders:add', request));
    if (!r.ok) return void (problem.textContent = errorText(r.error));
    path.input.value = '';
    newName.input.value = '';
    if ('newSpaceName' in request.space) void loadSpaces(); // the new space is one to choose from now
    refresh();
  });
  f.append(pathRow, space.wrap, fresh, problem, go);
  box.append(f);
  const loadSpaces = () => invoke('spaces:list', {}).then((r) => {
    if (!r.ok) {
      space.input.replaceChildren(el('option', { value: '' }, t('folders.space.none')));
      return;
    }
    const options = r.value.spaces.map((s) => el('option', { value: s.spaceId }, `${s.name} (${t(`class.${s.classification}`)})`));
    space.input.replaceChildren(...(options.length ? options : [el('option', { value: '' }, t('folders.space.none'))]));
  });
  void loadSpaces();
  return box;
}

/** The activity feed: newest first, at most 50 lines. */
export function showActivity(list: HTMLElement, items: Activity[], names: Map<string, string>): void {
  if (items.length === 0) {
    list.replaceChildren(el('li', { class: 'empty' }, t('activity.empty')));
    return;
  }
  list.replaceChildren(...items.slice(0, 50).map((a) => {
    const li = el('li', { class: `activity ${a.kind}` });
    li.append(
      el('span', { class: 'kind' }, t(`activity.${a.kind}` as Key)),
      el('span', { class: 'what' }, [names.get(a.folderId), a.path, a.detail, a.count !== undefined ? (a.count === 1 ? t('activity.items.one') : t('activity.items', { n: formatNumber(a.count) })) : null].filter(Boolean).join(' · ')),
      el('time', { class: 'meta', datetime: new Date(a.at).toISOString() }, formatDateTime(a.at)),
    );
    return li;
  }));
}
