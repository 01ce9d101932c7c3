// The link page /s/:linkId#<secret> (issue 17 item 4, docs/architecture.md §5): one small state machine and a
// render function. Everything the visitor reads comes from i18n.ts; file names are set with textContent only.
import { initCrypto, type LinkKdf, type PublicLinkInfo } from '@kluis/shared';
import { fetchInfo, PageError, type ErrorKind } from './api.js';
import { fileName, openLink, type Opened } from './download.js';
import { entryJob, fileJob, folderBody, zipJob, type Job } from './folder.js';
import { formatBytes, formatDate, initialLang, lang, plural, setLang, t, type Key, type Lang } from './i18n.js';
import { renderEnvBanner } from '../common/env-banner.js';
import { BLOB_LIMIT, openSink, SaveCancelled, TooLargeForBrowser, type Sink } from './save.js';
import { button, el, focusTitle, langButtons, setStatus } from '../common/ui.js';

type View =
  | { v: 'loading' }
  | { v: 'error'; kind: ErrorKind; retryAfter?: number; retry?: () => void }
  | { v: 'locked'; info: PublicLinkInfo; problem?: 'wrong' | 'empty'; busy?: boolean }
  | { v: 'ready'; info: PublicLinkInfo; opened: Opened; note?: 'cancelled' | 'too-large' }
  | { v: 'downloading'; info: PublicLinkInfo; opened: Opened; done: number; total: number; verifying?: boolean }
  | { v: 'done'; info: PublicLinkInfo; opened: Opened; saved: string; all?: boolean };

const LINK_PATH = /^\/s\/([A-Za-z0-9_-]{22})\/?$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;

let view: View = { v: 'loading' };
let linkId = '';
let secret = '';

function show(next: View, focus = true): void {
  view = next;
  render();
  if (focus) focusTitle();
}

function render(): void {
  renderEnvBanner(lang());
  renderLangs();
  const card = document.getElementById('card')!;
  const title = el('h1', { id: 'title', tabindex: '-1' });
  const body: HTMLElement[] = [];
  document.getElementById('privacy')!.textContent = t('info' in view && view.info.kind === 'folder' ? 'folder.privacy' : 'privacy');
  switch (view.v) {
    case 'loading':
      title.textContent = t('loading');
      body.push(el('div', { class: 'spinner', 'aria-hidden': 'true' }));
      break;
    case 'error': {
      const kind = view.kind === 'wrong-password' ? 'server' : view.kind;
      const titleKey = `err.${kind}.title` as Key;
      title.textContent = t(titleKey);
      card.dataset.state = `error-${kind}`;
      const minutes = plural('minutes', Math.max(1, Math.ceil((view.retryAfter ?? 60) / 60)));
      body.push(el('p', { class: 'lead' }, t(`err.${kind}.text` as Key, { minutes })));
      if (view.retry) body.push(button(t('retry'), view.retry, 'primary'));
      else if (kind === 'session' || kind === 'throttled') body.push(button(t('reload'), () => location.reload(), 'secondary'));
      break;
    }
    case 'locked':
      title.textContent = t(view.info.kind === 'folder' ? 'folder.shared' : 'shared.title');
      body.push(...facts(view.info), view.info.kdf ? passwordForm(view) : openButton(view));
      break;
    case 'ready':
    case 'downloading':
    case 'done':
      title.textContent = fileName(view.opened.manifest);
      title.classList.add('filename');
      body.push(...facts(view.info, view.opened), ...(view.opened.folder && view.v !== 'downloading' ? folderActions(view) : actions(view)));
      break;
  }
  if (view.v !== 'error') card.dataset.state = view.v;
  card.replaceChildren(title, ...body);
}

function renderLangs(): void {
  document.getElementById('langs')!.replaceChildren(...langButtons(switchLang));
}

function switchLang(l: Lang): void {
  setLang(l, true);
  render();
}

/** Expiry, downloads left, and once opened the size (name is the title). */
function facts(info: PublicLinkInfo, opened?: Opened): HTMLElement[] {
  const dl = el('dl', { class: 'facts' });
  const row = (k: string, v: string) => dl.append(el('dt', {}, k), el('dd', {}, v));
  if (opened && !opened.folder) row(t('file.size'), formatBytes(opened.manifest.size));
  const left = opened ? opened.access.downloadsLeft : info.downloadsLeft;
  const expiresAt = opened ? opened.access.expiresAt : info.expiresAt;
  const items = [el('p', { class: 'meta' }, t('expires', { date: formatDate(expiresAt) })), el('p', { class: 'meta' }, left === null ? t('downloads.unlimited') : plural('downloads', left))];
  return opened && !opened.folder ? [dl, ...items] : items;
}

function passwordForm(v: Extract<View, { v: 'locked' }>): HTMLElement {
  const form = el('form', { class: 'pw', novalidate: '' });
  const intro = el('p', { class: 'lead' }, t('password.intro'));
  const input = el('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'off', autocapitalize: 'off', spellcheck: 'false', required: '' }) as HTMLInputElement;
  const label = el('label', { for: 'password' }, t('password.label'));
  const problem = el('p', { id: 'pw-problem', class: 'problem', role: 'alert' }, v.problem === 'wrong' ? t('password.wrong') : v.problem === 'empty' ? t('password.empty') : '');
  if (v.problem) {
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', 'pw-problem');
  }
  const toggle = el('label', { class: 'check' });
  const box = el('input', { type: 'checkbox', id: 'pw-show' }) as HTMLInputElement;
  box.addEventListener('change', () => (input.type = box.checked ? 'text' : 'password'));
  toggle.append(box, document.createTextNode(t('password.show')));
  const submit = el('button', { type: 'submit', class: 'primary' }, v.busy ? t('password.checking') : t('password.submit')) as HTMLButtonElement;
  if (v.busy) {
    submit.disabled = true;
    input.disabled = true;
  }
  form.append(intro, label, input, problem, toggle, submit);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!input.value) return show({ ...v, problem: 'empty' }, false);
    void unlock(v.info, input.value);
  });
  queueMicrotask(() => !v.busy && input.focus());
  return form;
}

/**
 * Without a password the visitor still clicks once before the file is opened: an access counts as a download, and
 * mail scanners and link previews that run scripts must not use up a link with a download limit.
 */
function openButton(v: Extract<View, { v: 'locked' }>): HTMLElement {
  const b = button(v.busy ? t('open.checking') : t(v.info.kind === 'folder' ? 'folder.open' : 'open.submit'), () => void unlock(v.info, null), 'primary', 'open');
  b.disabled = Boolean(v.busy);
  return b;
}

function actions(v: Extract<View, { v: 'ready' | 'downloading' | 'done' }>): HTMLElement[] {
  if (v.v === 'downloading') {
    const pct = v.total ? Math.floor((v.done / v.total) * 100) : 100;
    const bar = el('progress', { max: '100', value: String(pct), 'aria-label': t('download.button') });
    const text = v.verifying ? t('download.verifying') : t('download.progress', { pct, done: formatBytes(v.done), total: formatBytes(v.total) });
    return [bar, el('p', { class: 'meta', id: 'progress-text' }, text)];
  }
  const out: HTMLElement[] = [];
  if (v.v === 'done') out.push(doneNote(v));
  if (v.v === 'ready' && v.note === 'cancelled') out.push(el('p', { class: 'meta' }, t('download.cancelled')));
  if (v.v === 'ready' && v.note === 'too-large') {
    out.push(el('p', { class: 'problem', role: 'alert' }, t('download.blobOnly', { limit: formatBytes(BLOB_LIMIT), size: formatBytes(v.opened.manifest.size) })));
  }
  const left = v.opened.access.downloadsLeft;
  if (v.v === 'ready' || left === null || left > 0) {
    const again = () => void save(v.info, v.opened, fileJob(linkId, v.opened, fileName(v.opened.manifest)));
    out.push(button(t(v.v === 'done' ? 'download.again' : 'download.button'), again, v.v === 'done' ? 'secondary' : 'primary', 'download'));
  }
  return out;
}

async function unlock(info: PublicLinkInfo, password: string | null): Promise<void> {
  show({ v: 'locked', info, busy: true }, false);
  setStatus(t(password !== null ? 'password.checking' : 'open.checking'));
  // Let the browser paint the "checking" state before Argon2id takes the thread for a moment.
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 30)));
  try {
    const opened = await openLink(linkId, secret, info.kdf as LinkKdf | null, password);
    setStatus('');
    show({ v: 'ready', info, opened });
  } catch (err) {
    setStatus('');
    const e = asPageError(err);
    if (e.kind === 'wrong-password' && info.kdf) return show({ v: 'locked', info, problem: 'wrong' }, false);
    if (e.kind === 'wrong-password') return show({ v: 'error', kind: 'damaged' });
    show({ v: 'error', kind: e.kind, retryAfter: e.retryAfterSeconds, ...(e.kind === 'network' || e.kind === 'server' ? { retry: () => void unlock(info, password) } : {}) });
  }
}

function doneNote(v: Extract<View, { v: 'done' }>): HTMLElement {
  return el('p', { class: 'ok', role: 'status' }, t(v.all ? 'folder.doneAll' : 'download.done', { name: v.saved }));
}

/** A folder link: the note of the last save, then the list with "download all" and a button per file. */
function folderActions(v: Extract<View, { v: 'ready' | 'done' }>): HTMLElement[] {
  const { opened, info } = v;
  const listing = opened.folder!;
  const out: HTMLElement[] = [];
  if (v.v === 'done') out.push(doneNote(v));
  if (v.v === 'ready' && v.note === 'cancelled') out.push(el('p', { class: 'meta' }, t('download.cancelled')));
  if (v.v === 'ready' && v.note === 'too-large') out.push(el('p', { class: 'problem', role: 'alert' }, t('download.blobOnly', { limit: formatBytes(BLOB_LIMIT), size: formatBytes(listing.files.reduce((n, f) => n + f.size, 0)) })));
  out.push(...folderBody(listing, (f) => void save(info, opened, entryJob(linkId, opened, f)), () => void save(info, opened, zipJob(linkId, opened, listing), true)));
  return out;
}

async function save(info: PublicLinkInfo, opened: Opened, job: Job, all = false): Promise<void> {
  let sink: Sink;
  try {
    sink = await openSink(job.name, job.total);
  } catch (err) {
    if (err instanceof SaveCancelled) return show({ v: 'ready', info, opened, note: 'cancelled' }, false);
    if (err instanceof TooLargeForBrowser) return show({ v: 'ready', info, opened, note: 'too-large' }, false);
    return show({ v: 'error', kind: 'browser' });
  }
  document.body.dataset.sink = sink.kind;
  await run(info, opened, sink, job, all);
}

/** The progress bar is redrawn at most this often (each redraw rebuilds the card), and on 100 %. */
const REDRAW_MS = 100;
/** The polite live region says the progress (in tens of percent) at most this often, not to flood a screen reader. */
const ANNOUNCE_MS = 1000;

/** Runs (or resumes) a download; a network loss offers a retry that continues with the same sink and state. */
async function run(info: PublicLinkInfo, opened: Opened, sink: Sink, job: Job, all: boolean): Promise<void> {
  const total = job.total;
  let announced = -1;
  let lastAnnounce = -Infinity;
  let lastDraw = -Infinity;
  let latest = job.written();
  let trailing: ReturnType<typeof setTimeout> | undefined;
  const draw = () => {
    trailing = undefined;
    lastDraw = performance.now();
    const done = latest;
    show({ v: 'downloading', info, opened, done, total }, false);
    const decile = Math.floor((done / Math.max(1, total)) * 10);
    if (decile !== announced && lastDraw - lastAnnounce >= ANNOUNCE_MS) {
      announced = decile;
      lastAnnounce = lastDraw;
      setStatus(t('download.progress', { pct: decile * 10, done: formatBytes(done), total: formatBytes(total) }));
    }
  };
  const progress = (done: number) => {
    latest = done;
    if (done >= total || performance.now() - lastDraw >= REDRAW_MS) {
      clearTimeout(trailing);
      draw();
    } else {
      // A skipped update still shows once the interval is over, should the next one be slow to come.
      trailing ??= setTimeout(draw, REDRAW_MS - (performance.now() - lastDraw));
    }
  };
  const stopProgress = () => {
    clearTimeout(trailing);
    trailing = undefined;
  };
  progress(job.written());
  try {
    await job.run(sink, progress);
    stopProgress();
    show({ v: 'downloading', info, opened, done: job.written(), total, verifying: true }, false);
    await sink.close();
    setStatus('');
    show({ v: 'done', info, opened, saved: job.name, all });
  } catch (err) {
    stopProgress();
    const e = asPageError(err);
    setStatus('');
    if (e.kind === 'network') return show({ v: 'error', kind: 'network', retry: () => void run(info, opened, sink, job, all) });
    await sink.abort();
    if (err instanceof SaveCancelled) return show({ v: 'ready', info, opened, note: 'cancelled' }, false);
    show({ v: 'error', kind: e.kind });
  }
}

function asPageError(err: unknown): PageError {
  if (err instanceof PageError) return err;
  console.error(err instanceof Error ? err.message : 'error'); // never the fragment: no URL is logged
  return new PageError('server', 'unexpected');
}

async function start(): Promise<void> {
  const m = LINK_PATH.exec(location.pathname);
  const fragment = location.hash.replace(/^#/, '');
  if (!m || !SECRET.test(fragment)) return show({ v: 'error', kind: 'missing' });
  linkId = m[1]!;
  secret = fragment;
  try {
    await initCrypto();
  } catch {
    return show({ v: 'error', kind: 'browser' });
  }
  try {
    const info = await fetchInfo(linkId);
    show({ v: 'locked', info });
  } catch (err) {
    const e = asPageError(err);
    show({ v: 'error', kind: e.kind, retryAfter: e.retryAfterSeconds, ...(e.kind === 'network' || e.kind === 'server' ? { retry: () => void start() } : {}) });
  }
}

setLang(initialLang());
render();
void start();
