// The request page /r/:requestId#<secret> (issue 17 item 6, docs/crypto.md §9.2): someone without an account sends
// files into a member's folder. Files go one after the other through upload.ts; each has a row with its own progress.
// Everything the visitor reads comes from ./i18n.ts; file names are set with textContent only.
import { CryptoError, deriveRequestKeys, initCrypto, openGrantForUploader, toBase64Url, type PublicRequestInfo } from '@kluis/shared';
import { formatBytes, formatDate, initialLang, lang, LANGS, setLang, type Lang } from '../common/i18n.js';
import { renderEnvBanner } from '../common/env-banner.js';
import { button, el, focusTitle, setStatus } from '../common/ui.js';
import { RequestError, fetchInfo, type RequestErrorKind } from './api.js';
import { plural, t, type Key } from './i18n.js';
import { encryptor } from './encrypt-pool.js';
import { uploadFile, type Target } from './upload.js';

type Row = { file: File; state: 'waiting' | 'sending' | 'done' | 'failed' | 'skipped' | 'too-large'; done: number; reason?: string; node?: HTMLElement };
type View = { v: 'loading' } | { v: 'error'; kind: RequestErrorKind; retry?: () => void } | { v: 'ready' };

const REQUEST_PATH = /^\/r\/([A-Za-z0-9_-]{22})\/?$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;

let view: View = { v: 'loading' };
let info: PublicRequestInfo | null = null;
let target: Target | null = null;
const rows: Row[] = [];
let busy = false;

function show(next: View): void {
  view = next;
  render();
  focusTitle();
}

function render(): void {
  renderEnvBanner(lang());
  renderLangs();
  document.getElementById('privacy')!.textContent = t('privacy');
  const card = document.getElementById('card')!;
  const title = el('h1', { id: 'title', tabindex: '-1' });
  const body: HTMLElement[] = [];
  switch (view.v) {
    case 'loading':
      title.textContent = t('loading');
      body.push(el('div', { class: 'spinner', 'aria-hidden': 'true' }));
      card.dataset.state = 'loading';
      break;
    case 'error':
      title.textContent = t(`err.${view.kind}.title` as Key);
      body.push(el('p', { class: 'lead' }, t(`err.${view.kind}.text` as Key)));
      if (view.retry) body.push(button(t('retry'), view.retry, 'primary'));
      card.dataset.state = `error-${view.kind}`;
      break;
    case 'ready':
      title.textContent = t('title');
      body.push(el('p', { class: 'lead' }, t('intro')), facts(), ...(info!.filesLeft > 0 ? [dropZone()] : []), fileList());
      card.dataset.state = rows.length > 0 && rows.every((r) => r.state === 'done') ? 'done' : 'ready';
      break;
  }
  card.replaceChildren(title, ...body);
}

function renderLangs(): void {
  const nav = document.getElementById('langs')!;
  nav.replaceChildren(...LANGS.map((l) => {
    const b = button(l.toUpperCase(), () => {
      setLang(l as Lang, true);
      render();
    }, 'lang');
    b.setAttribute('lang', l);
    b.setAttribute('aria-pressed', String(l === lang()));
    return b;
  }));
}

function facts(): HTMLElement {
  const left = info!.filesLeft;
  const box = el('div', { class: 'facts-line' });
  box.append(el('p', { class: 'meta', id: 'expires' }, t('expires', { date: formatDate(info!.expiresAt) })), el('p', { class: 'meta', id: 'files-left' }, left > 0 ? plural('files', left) : t('files.none')));
  return box;
}

function dropZone(): HTMLElement {
  const input = el('input', { type: 'file', multiple: '', id: 'picker', class: 'visually-hidden', tabindex: '-1', 'aria-hidden': 'true' }) as HTMLInputElement;
  input.addEventListener('change', () => {
    add([...(input.files ?? [])]);
    input.value = '';
  });
  const zone = el('div', { class: 'drop', id: 'drop' });
  const pick = button(t('drop.pick'), () => input.click(), 'primary', 'pick');
  zone.append(el('p', { class: 'drop-label' }, t('drop.label')), el('p', { class: 'meta' }, t('drop.or')), pick, input);
  if (busy) zone.append(el('p', { class: 'meta' }, t('drop.busy')));
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    add([...(e.dataTransfer?.files ?? [])]);
  });
  return zone;
}

function fileList(): HTMLElement {
  const list = el('ul', { class: 'files', id: 'files', 'aria-live': 'polite' });
  for (const r of rows) {
    r.node = el('li', { class: `file ${r.state}` });
    paintRow(r);
    list.append(r.node);
  }
  const sent = rows.filter((r) => r.state === 'done').length;
  const box = el('div');
  box.append(list);
  if (sent > 0 && !busy) box.append(el('p', { class: 'ok', id: 'summary', role: 'status' }, plural('all.done', sent)));
  return box;
}

function statusText(r: Row): string {
  const total = r.file.size;
  switch (r.state) {
    case 'waiting': return t('file.waiting');
    case 'sending': return r.done >= total ? t('file.finishing') : t('file.encrypting', { pct: total === 0 ? 100 : Math.floor((100 * r.done) / total) });
    case 'done': return t('file.done');
    case 'skipped': return t('file.skipped');
    case 'too-large': return t('file.tooLarge', { size: formatBytes(info!.maxFileBytes) });
    case 'failed': return t('file.failed', { reason: r.reason ?? t('reason.other') });
  }
}

function paintRow(r: Row): void {
  if (!r.node) return;
  r.node.className = `file ${r.state}`;
  const name = el('span', { class: 'name' }, r.file.name);
  const size = el('span', { class: 'size' }, formatBytes(r.file.size));
  const line = el('div', { class: 'line' });
  line.append(name, size);
  const parts: HTMLElement[] = [line];
  // A bar only while there is progress to show: a sent file needs none.
  if (r.state === 'waiting' || r.state === 'sending' || r.state === 'failed') parts.push(el('progress', { max: String(Math.max(1, r.file.size)), value: String(r.done) }));
  parts.push(el('span', { class: 'state' }, statusText(r)));
  if (r.state === 'failed') {
    parts.push(button(t('retry'), () => {
      r.state = 'waiting';
      r.done = 0;
      render();
      void pump();
    }, 'secondary'));
  }
  r.node.replaceChildren(...parts);
}

function add(files: File[]): void {
  if (files.length === 0) return;
  for (const file of files) rows.push({ file, state: file.size > info!.maxFileBytes ? 'too-large' : 'waiting', done: 0 });
  render();
  void pump();
}

let lastPaint = 0;

/** Sends waiting files one after the other. */
async function pump(): Promise<void> {
  if (busy || !target || !info) return;
  busy = true;
  render();
  try {
    for (let r = rows.find((x) => x.state === 'waiting'); r; r = rows.find((x) => x.state === 'waiting')) {
      const row = r;
      if (info.filesLeft <= 0) {
        row.state = 'skipped';
        continue;
      }
      row.state = 'sending';
      paintRow(row);
      setStatus(`${row.file.name}: ${statusText(row)}`);
      try {
        const res = await uploadFile(target, row.file, () => info!.maxFiles - info!.filesLeft + 1, (done) => {
          row.done = done;
          const now = performance.now();
          if (now - lastPaint > 100 || done >= row.file.size) {
            lastPaint = now;
            paintRow(row);
          }
        });
        row.state = 'done';
        info = { ...info, filesLeft: res.filesLeft };
        render();
      } catch (err) {
        const e = err instanceof RequestError ? err : new RequestError(err instanceof CryptoError ? 'tampered' : 'server', String(err));
        if (e.kind === 'expired' || e.kind === 'revoked' || e.kind === 'full' || e.kind === 'unknown' || e.kind === 'missing' || e.kind === 'throttled' || e.kind === 'tampered') {
          if (e.kind === 'full') info = { ...info, filesLeft: 0 };
          row.state = 'failed';
          busy = false;
          show({ v: 'error', kind: e.kind, ...(e.kind === 'throttled' ? { retry: () => location.reload() } : {}) });
          return;
        }
        row.state = e.kind === 'too-large' ? 'too-large' : 'failed';
        row.reason = t(e.kind === 'network' ? 'reason.network' : e.kind === 'bad-name' ? 'reason.bad-name' : 'reason.other');
        render();
      }
    }
  } finally {
    busy = false;
  }
  render();
  setStatus(''); // the card's summary says it (a status region of its own)
}

async function start(): Promise<void> {
  setLang(initialLang());
  render();
  const m = REQUEST_PATH.exec(location.pathname);
  const secret = location.hash.slice(1);
  if (!m) return show({ v: 'error', kind: 'unknown' });
  if (!SECRET.test(secret)) return show({ v: 'error', kind: 'missing' });
  try {
    await initCrypto();
  } catch {
    return show({ v: 'error', kind: 'browser' });
  }
  void encryptor(); // the encryption workers load while the visitor reads the page
  const requestId = m[1]!;
  const keys = deriveRequestKeys(secret);
  const load = async () => {
    show({ v: 'loading' });
    try {
      info = await fetchInfo(requestId);
    } catch (err) {
      const e = err instanceof RequestError ? err : new RequestError('server');
      return show({ v: 'error', kind: e.kind, ...(e.kind === 'network' || e.kind === 'server' ? { retry: () => void load() } : {}) });
    }
    try {
      const { grant, folder } = openGrantForUploader(info.grant, keys, requestId);
      target = { requestId, auth: toBase64Url(keys.requestAuth), keys, grant, folder };
    } catch {
      return show({ v: 'error', kind: 'tampered' });
    }
    show({ v: 'ready' });
  };
  await load();
}

void start();
