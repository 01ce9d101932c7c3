// First start (issue 19 item 3): the server's address, then sign-up with an invitation or sign-in; after sign-up the
// recovery key, shown once, with two of its words typed back as proof it was written down (account:confirmRecovery);
// then the key's fingerprint. Each field is checked with the contract's schema before the request leaves.
import type { Response } from '../../desktop/src/electron/ipc/contract.js';
import { check, invoke } from './bridge.js';
import { t } from './i18n.js';
import { busy, el, errorText, field, form, input, submit, type Field } from './ui.js';

type Account = Response<'account:login'>['account'];
type Mode = 'signup' | 'login';

const MIN_PASSWORD = 12;

/** The first screen; `done` runs once the person is signed in and has seen their fingerprint. */
export function renderWelcome(main: HTMLElement, done: () => void, mode: Mode = 'signup'): void {
  main.dataset.state = 'welcome';
  const card = el('section', { class: 'card narrow', 'aria-labelledby': 'title' });
  card.append(el('h1', { id: 'title', tabindex: '-1' }, t('welcome.title')), el('p', { class: 'lead' }, t('welcome.lead')));
  const modes = el('div', { class: 'segmented', role: 'group', 'aria-label': t('welcome.title') });
  for (const m of ['signup', 'login'] as const) {
    const b = el('button', { type: 'button', id: `mode-${m}`, 'aria-pressed': String(m === mode) }, t(m === 'signup' ? 'welcome.signup' : 'welcome.login'));
    b.addEventListener('click', () => {
      renderWelcome(main, done, m);
      document.getElementById(`mode-${m}`)?.focus();
    });
    modes.append(b);
  }
  const server = field('server', 'welcome.server', input('url', { inputmode: 'url', spellcheck: 'false', placeholder: 'https://' }), 'welcome.server.hint');
  const email = field('email', 'welcome.email', input('email', { autocomplete: 'username' }));
  const invite = field('invite', 'welcome.invite', input('text'));
  const password = field('password', 'welcome.password', input('password', { autocomplete: mode === 'signup' ? 'new-password' : 'current-password' }), mode === 'signup' ? 'welcome.password.hint' : undefined);
  const device = field('device', 'welcome.device', input('text'));
  device.input.value = guessDeviceName();
  const go = submit(mode === 'signup' ? 'welcome.create' : 'welcome.signin', 'welcome-submit');
  const problem = el('p', { class: 'problem', id: 'welcome-problem', role: 'alert' });
  const fields: Record<string, Field> = { server, email, invite, password, deviceName: device };
  const f = form('welcome-form', async () => {
    for (const x of Object.values(fields)) x.problem(null);
    problem.textContent = '';
    const base = { server: server.input.value.trim(), email: email.input.value.trim(), password: password.input.value, deviceName: device.input.value.trim() };
    if (!/^https?:\/\/\S+$/.test(base.server)) return stop(server, t('welcome.badServer'));
    if (mode === 'signup' && base.password.length < MIN_PASSWORD) return stop(password, t('welcome.shortPassword'));
    const signup = { ...base, invite: invite.input.value.trim() };
    const ok = mode === 'signup' ? check('account:signup', signup) : check('account:login', base);
    if (!ok.ok) return stop(fields[ok.field] ?? server, t('err.field', { message: ok.message }));
    if (mode === 'signup') {
      const answer = await busy(go, () => invoke('account:signup', signup));
      if (!answer.ok) return void (problem.textContent = errorText(answer.error));
      password.input.value = '';
      return renderRecovery(main, answer.value.account, answer.value.recoveryKey, done);
    }
    const answer = await busy(go, () => invoke('account:login', base));
    if (!answer.ok) return void (problem.textContent = errorText(answer.error));
    password.input.value = '';
    renderFingerprint(main, answer.value.account, done);
  });
  f.append(server.wrap, email.wrap, ...(mode === 'signup' ? [invite.wrap] : []), password.wrap, device.wrap, problem, go);
  card.append(modes, f);
  main.replaceChildren(card);
}

function stop(f: Field, text: string): void {
  f.problem(text);
  f.input.focus();
}

function guessDeviceName(): string {
  const p = navigator.platform || '';
  if (/win/i.test(p)) return 'Windows-pc';
  if (/mac/i.test(p)) return 'Mac';
  return 'Linux-pc';
}

/** Two different word positions of the key, picked at random (0-based). */
function pickTwo(n: number): [number, number] {
  const a = crypto.getRandomValues(new Uint32Array(1))[0]! % n;
  let b = crypto.getRandomValues(new Uint32Array(1))[0]! % (n - 1);
  if (b >= a) b++;
  return a < b ? [a, b] : [b, a];
}

export function renderRecovery(main: HTMLElement, account: Account, recoveryKey: string, done: () => void): void {
  main.dataset.state = 'recovery';
  const words = recoveryKey.split(/[\s-]+/).filter(Boolean);
  const [a, b] = pickTwo(Math.max(2, words.length));
  const card = el('section', { class: 'card narrow', 'aria-labelledby': 'title' });
  const list = el('ol', { class: 'words', id: 'recovery-key', 'aria-label': t('recovery.title') });
  for (const w of words) list.append(el('li', { class: 'secret' }, w));
  const wa = field('word-a', 'recovery.word', input('text', { spellcheck: 'false' }));
  const wb = field('word-b', 'recovery.word', input('text', { spellcheck: 'false' }));
  wa.wrap.querySelector('label')!.textContent = t('recovery.word', { n: a + 1 });
  wb.wrap.querySelector('label')!.textContent = t('recovery.word', { n: b + 1 });
  const problem = el('p', { class: 'problem', id: 'recovery-problem', role: 'alert' });
  const go = submit('recovery.confirm', 'recovery-submit');
  const f = form('recovery-form', async () => {
    problem.textContent = '';
    const typed = [{ index: a, word: wa.input.value.trim() }, { index: b, word: wb.input.value.trim() }];
    if (typed.some((x) => x.word.toLowerCase() !== (words[x.index] ?? '').toLowerCase())) {
      problem.textContent = t('recovery.wrong');
      wa.input.focus();
      return;
    }
    const answer = await busy(go, () => invoke('account:confirmRecovery', { words: typed }));
    if (!answer.ok) {
      problem.textContent = errorText(answer.error);
      return;
    }
    renderFingerprint(main, account, done);
  });
  f.append(el('p', {}, t('recovery.check', { a: a + 1, b: b + 1 })), el('div', { class: 'row' }), problem, go);
  f.querySelector('.row')!.append(wa.wrap, wb.wrap);
  card.append(el('h1', { id: 'title', tabindex: '-1' }, t('recovery.title')), el('p', { class: 'lead' }, t('recovery.lead')), list, f);
  main.replaceChildren(card);
  document.getElementById('title')?.focus();
}

export function renderFingerprint(main: HTMLElement, account: Account, done: () => void): void {
  main.dataset.state = 'fingerprint';
  const card = el('section', { class: 'card narrow', 'aria-labelledby': 'title' });
  const go = el('button', { type: 'button', class: 'primary', id: 'fingerprint-continue' }, t('fingerprint.continue'));
  go.addEventListener('click', done);
  card.append(
    el('h1', { id: 'title', tabindex: '-1' }, t('fingerprint.title')),
    el('p', { class: 'lead' }, t('fingerprint.lead')),
    el('p', { class: 'secret fingerprint', id: 'fingerprint' }, account.fingerprint),
    el('p', { class: 'meta' }, `${account.email} · ${account.server}`),
    go,
  );
  main.replaceChildren(card);
  document.getElementById('title')?.focus();
}
