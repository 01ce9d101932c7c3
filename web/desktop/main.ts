// The desktop app's window (docs/desktop.md "The renderer"): onboarding while there is no account, then the folders,
// conflicts, devices and settings screens behind a side navigation. It talks to main only through window.kluis
// (./bridge.ts); main's `status` events update the folders in place and `activity` events feed the activity list.
// Everything people read comes from ./i18n.ts, set as text.
import '../common/zod-config.js'; // first: before any schema exists
import type { FolderStatus, Response } from '../../desktop/src/electron/ipc/contract.js';
import { invoke, onEvent } from './bridge.js';
import { formatNumber, initialLang, lang, setLang, t, type Lang } from './i18n.js';
import { addFolderForm, showActivity, showFolders, type Activity } from './folders-view.js';
import { renderWelcome } from './onboarding.js';
import { renderConflicts, renderDevices, renderSettings } from './other-views.js';
import { langButtons } from '../common/ui.js';
import { announce, button, el, errorText } from './ui.js';

type Status = Response<'app:status'>;
type View = 'folders' | 'conflicts' | 'devices' | 'settings';
const VIEWS: View[] = ['folders', 'conflicts', 'devices', 'settings'];

let status: Status | null = null;
let view: View = 'folders';
const activity: Activity[] = [];

const $ = (id: string) => document.getElementById(id)!;

function names(): Map<string, string> {
  return new Map((status?.folders ?? []).map((f) => [f.folderId, f.path.split(/[\\/]/).filter(Boolean).pop() ?? f.path]));
}

async function refresh(): Promise<void> {
  const r = await invoke('app:status', {});
  if (!r.ok) {
    $('main').replaceChildren(el('p', { class: 'problem card narrow', id: 'fatal', role: 'alert' }, errorText(r.error)));
    return;
  }
  const before = status?.account ? 'in' : 'out';
  status = r.value;
  if (!status.account) {
    if (before === 'in' || $('main').dataset.state === 'loading') render();
    return;
  }
  if (before === 'out') render();
  else updateFolders(status.folders);
}

function updateFolders(folders: FolderStatus[]): void {
  if (status) status.folders = folders;
  const list = document.getElementById('folders');
  if (list) showFolders(list, folders, () => void refresh());
  const conflicts = folders.reduce((n, f) => n + f.conflicts, 0);
  const badge = document.getElementById('nav-conflicts-count');
  if (badge) badge.textContent = conflicts > 0 ? String(conflicts) : '';
}

function renderHeader(): void {
  $('langs').replaceChildren(...langButtons((l: Lang) => {
    setLang(l, true);
    announce(''); // a sentence said in the other language is stale
    render();
    document.querySelector<HTMLElement>(`#langs button[lang="${l}"]`)?.focus();
  }));
  $('langs').setAttribute('aria-label', t('lang.switch'));
  const who = $('who');
  who.replaceChildren();
  if (status?.account) who.append(el('span', { class: 'email' }, status.account.email), el('span', { class: 'meta', id: 'who-fingerprint' }, t('who.fingerprint', { fp: status.account.fingerprint })));
}

function renderNav(): void {
  const nav = $('nav');
  nav.hidden = !status?.account;
  nav.setAttribute('aria-label', t('nav.label'));
  if (nav.hidden) return nav.replaceChildren();
  nav.replaceChildren(...VIEWS.map((v) => {
    const b = button(t(`nav.${v}`), () => show(v), 'secondary', `nav-${v}`);
    b.className = 'nav';
    if (v === 'conflicts') b.append(el('span', { class: 'count', id: 'nav-conflicts-count' }));
    if (v === view) b.setAttribute('aria-current', 'page');
    return b;
  }));
}

function show(v: View): void {
  view = v;
  announce(''); // what was said about the screen left behind

  render();
  $('title').focus({ preventScroll: true });
}

function render(): void {
  renderHeader();
  renderNav();
  const main = $('main');
  if (!status?.account) return renderWelcome(main, () => void refresh().then(() => show('folders')));
  main.dataset.state = `view-${view}`;
  const section = el('section', { class: 'view', 'aria-labelledby': 'title' });
  main.replaceChildren(section);
  if (view === 'folders') {
    const list = el('div', { id: 'folders', class: 'folders' });
    const feed = el('ol', { id: 'activity', class: 'list feed', 'aria-labelledby': 'activity-title' });
    const side = el('section', { class: 'card', 'aria-labelledby': 'activity-title' });
    side.append(el('h2', { id: 'activity-title' }, t('activity.title')), feed);
    const cols = el('div', { class: 'columns' });
    const left = el('div');
    left.append(list, addFolderForm(() => void refresh(), status.folders.length === 0));
    cols.append(left, side);
    section.append(el('h1', { id: 'title', tabindex: '-1' }, t('folders.title')), cols);
    showFolders(list, status.folders, () => void refresh());
    showActivity(feed, activity, names());
  } else if (view === 'conflicts') void renderConflicts(section, status.folders);
  else if (view === 'devices') void renderDevices(section);
  else {
    void renderSettings(section, {
      account: status.account, keysProtected: status.keysProtected,
      onLanguage: (l) => {
        if (l !== lang()) {
          setLang(l, true);
          announce('');
          render();
        }
      },
      // refresh() sees the account go (in → out) and shows the welcome; clearing `status` first hid that change
      onLogout: () => void refresh(),
    });
  }
  updateFolders(status.folders);
}

setLang(initialLang());
onEvent((e) => {
  if (e.type === 'status') updateFolders(e.folders);
  else if (e.type === 'activity') {
    activity.unshift(e);
    activity.length = Math.min(activity.length, 200);
    const feed = document.getElementById('activity');
    if (feed) showActivity(feed, activity, names());
  } else {
    // wiped: main signed out and removed the folders (the admin's remote wipe)
    announce(t('wiped', { folders: formatNumber(e.removed.folders), files: formatNumber(e.removed.files) }));
    void refresh();
  }
});
void refresh();
