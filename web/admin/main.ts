// The admin console /admin/ (issue 18 item 3; docs/admin.md "The admin console"): sign-in with the password proof
// made here, 2-step verification (enrol or verify), then the views the caller's role may see. One render function per
// stage; the views live in views.ts and audit-view.ts. Everything people read comes from i18n.ts, set as text only.
import '../common/zod-config.js'; // first: before any schema exists (the page's CSP forbids eval)
import * as z from 'zod';
import { OrgRole, TOTP_ROLES, TotpEnrolment, TotpStatus } from '@kluis/shared';
import { ApiProblem, api, signIn, signOut, signedIn } from './api.js';
import { initialLang, setLang, t, type Key, type Lang } from './i18n.js';
import { renderEnvBanner } from '../common/env-banner.js';
import { lang } from '../common/i18n.js';
import { button, el, langButtons } from '../common/ui.js';
import { renderView, viewsFor, type Me, type ViewName } from './views.js';

const MeAnswer = z.object({ userId: z.string(), email: z.string(), role: OrgRole, orgId: z.string(), orgName: z.string() });

type Stage =
  | { s: 'login'; problem?: Key; minutes?: number; busy?: boolean }
  | { s: 'enrol'; enrolment: TotpEnrolment; problem?: Key; minutes?: number }
  | { s: 'totp'; problem?: Key; minutes?: number }
  | { s: 'app'; view: ViewName };

let stage: Stage = { s: 'login' };
let me: Me | null = null;

function show(next: Stage): void {
  stage = next;
  render();
  document.getElementById('title')?.focus({ preventScroll: true });
}

function render(): void {
  renderEnvBanner(lang());
  renderHeader();
  const main = document.getElementById('main')!;
  main.dataset.state = stage.s === 'app' ? `view-${stage.view}` : stage.s;
  const nav = document.getElementById('nav')!;
  nav.replaceChildren();
  nav.hidden = stage.s !== 'app';
  switch (stage.s) {
    case 'login':
      return main.replaceChildren(loginForm(stage));
    case 'enrol':
    case 'totp':
      return main.replaceChildren(codeForm(stage));
    case 'app': {
      const current = stage.view;
      nav.append(...viewsFor(me!.role).map((v) => {
        const b = button(t(`view.${v}` as Key), () => show({ s: 'app', view: v }), 'secondary', `nav-${v}`);
        b.className = 'tab';
        if (v === current) b.setAttribute('aria-current', 'page');
        return b;
      }));
      const section = el('section', { class: 'view', 'aria-labelledby': 'title' });
      main.replaceChildren(section);
      renderView(section, current, me!, onSessionEnded);
    }
  }
}

function renderHeader(): void {
  document.getElementById('langs')!.replaceChildren(...langButtons((l: Lang) => {
    setLang(l, true);
    render();
  }));
  document.getElementById('brand-name')!.textContent = t('brand');
  const who = document.getElementById('who')!;
  who.replaceChildren();
  if (stage.s === 'app' && me) {
    who.append(el('span', { class: 'org' }, me.orgName), el('span', { class: 'user', id: 'user' }, me.email), button(t('signout'), () => void leave(), 'small', 'signout'));
  }
}

function field(id: string, label: string, attrs: Record<string, string>): [HTMLElement, HTMLInputElement] {
  const input = el('input', { id, name: id, ...attrs }) as HTMLInputElement;
  return [el('label', { for: id }, label), input];
}

function problemLine(key: Key | undefined, minutes?: number): HTMLElement {
  return el('p', { id: 'problem', class: 'problem', role: 'alert' }, key ? t(key, { minutes: minutes ?? 15 }) : '');
}

function loginForm(v: Extract<Stage, { s: 'login' }>): HTMLElement {
  const card = el('section', { class: 'card narrow', 'aria-labelledby': 'title' });
  const form = el('form', { novalidate: '' });
  const [el1, email] = field('email', t('login.email'), { type: 'email', autocomplete: 'username', required: '', spellcheck: 'false' });
  const [pl, password] = field('password', t('login.password'), { type: 'password', autocomplete: 'current-password', required: '' });
  const submit = el('button', { type: 'submit', class: 'primary', id: 'signin' }, v.busy ? t('login.busy') : t('login.submit')) as HTMLButtonElement;
  submit.disabled = Boolean(v.busy);
  form.append(el1, email, pl, password, problemLine(v.problem, v.minutes), submit);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!email.value.trim() || !password.value) return show({ s: 'login', problem: 'login.empty' });
    void login(email.value, password.value, form);
  });
  card.append(el('h1', { id: 'title', tabindex: '-1' }, t('login.title')), el('p', { class: 'lead' }, t('login.intro')), form);
  queueMicrotask(() => email.focus());
  return card;
}

async function login(email: string, password: string, form: HTMLElement): Promise<void> {
  const submit = form.querySelector('button[type=submit]') as HTMLButtonElement;
  submit.disabled = true;
  submit.textContent = t('login.busy');
  document.getElementById('status')!.textContent = t('login.busy');
  // Let the browser paint before Argon2id takes the thread for a moment.
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 30)));
  try {
    await signIn(email, password);
    document.getElementById('status')!.textContent = '';
    me = await api('GET', '/api/v1/me', undefined, MeAnswer);
    if (!TOTP_ROLES.includes(me.role)) {
      await signOut();
      me = null;
      return show({ s: 'login', problem: 'login.notAdmin' });
    }
    await afterPassword();
  } catch (err) {
    document.getElementById('status')!.textContent = '';
    show({ s: 'login', ...loginProblem(err) });
  }
}

function loginProblem(err: unknown): { problem: Key; minutes?: number } {
  if (!(err instanceof ApiProblem)) return { problem: 'login.server' };
  if (err.status === 401 || err.status === 400) return { problem: 'login.wrong' };
  if (err.status === 429) return { problem: 'login.throttled', minutes: Math.max(1, Math.ceil(err.retryAfter / 60)) };
  if (err.status === 0) return { problem: 'login.network' };
  return { problem: 'login.server' };
}

/** After the password: enrol or verify a code where the organisation's policy asks it, else straight in. */
async function afterPassword(): Promise<void> {
  const status = await api('GET', '/api/v1/auth/totp', undefined, TotpStatus);
  if (status.required && !status.enrolled) {
    const enrolment = await api('POST', '/api/v1/auth/totp/enrol', {}, TotpEnrolment);
    return show({ s: 'enrol', enrolment });
  }
  if (status.required && !status.verified) return show({ s: 'totp' });
  enter();
}

function enter(): void {
  show({ s: 'app', view: viewsFor(me!.role)[0]! });
}

function codeForm(v: Extract<Stage, { s: 'enrol' | 'totp' }>): HTMLElement {
  const card = el('section', { class: 'card narrow', 'aria-labelledby': 'title' });
  const form = el('form', { novalidate: '' });
  const [cl, code] = field('code', t('totp.code'), { type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6', required: '', class: 'code' });
  if (v.problem) {
    code.setAttribute('aria-invalid', 'true');
    code.setAttribute('aria-describedby', 'problem');
  }
  const submit = el('button', { type: 'submit', class: 'primary', id: 'verify' }, v.s === 'enrol' ? t('enrol.submit') : t('totp.submit'));
  form.append(cl, code, problemLine(v.problem, v.minutes), submit);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void sendCode(v, code.value.replace(/\s+/g, ''));
  });
  card.append(el('h1', { id: 'title', tabindex: '-1' }, v.s === 'enrol' ? t('enrol.title') : t('totp.title')));
  if (v.s === 'enrol') {
    const secret = v.enrolment.secret.replace(/(.{4})/g, '$1 ').trim();
    card.append(
      el('p', { class: 'lead' }, t('enrol.intro')),
      el('p', { class: 'label' }, t('enrol.secret')),
      el('p', { class: 'secret', id: 'totp-secret' }, secret),
      el('p', { class: 'label' }, t('enrol.uri')),
      el('a', { href: v.enrolment.uri, id: 'totp-uri', class: 'uri' }, t('enrol.open')),
    );
  } else {
    card.append(el('p', { class: 'lead' }, t('totp.intro')));
  }
  card.append(form);
  if (v.s === 'totp') card.append(el('p', { class: 'meta' }, t('totp.lost')));
  queueMicrotask(() => code.focus());
  return card;
}

async function sendCode(v: Extract<Stage, { s: 'enrol' | 'totp' }>, code: string): Promise<void> {
  if (!/^\d{6}$/.test(code)) return show({ ...v, problem: 'totp.wrong' });
  try {
    await api('POST', v.s === 'enrol' ? '/api/v1/auth/totp/confirm' : '/api/v1/auth/totp/verify', { code }, TotpStatus);
    enter();
  } catch (err) {
    if (!(err instanceof ApiProblem)) return show({ ...v, problem: 'login.server' });
    if (err.status === 429) return show({ ...v, problem: 'totp.throttled', minutes: Math.max(1, Math.ceil(err.retryAfter / 60)) });
    if (err.status === 401 && !err.reason) return onSessionEnded();
    if (err.status === 401) return show({ ...v, problem: err.reason === 'replayed' ? 'totp.replayed' : 'totp.wrong' });
    show({ ...v, problem: err.status === 0 ? 'login.network' : 'login.server' });
  }
}

function onSessionEnded(): void {
  me = null;
  void signOut();
  show({ s: 'login', problem: 'error.session' });
}

async function leave(): Promise<void> {
  await signOut();
  me = null;
  show({ s: 'login' });
}

// Closing or leaving the page ends the session on the server too: no console session outlives its tab.
addEventListener('pagehide', () => {
  if (signedIn()) void signOut(true);
});

setLang(initialLang());
render();
