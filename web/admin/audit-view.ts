// The audit trail view: the chain's status, filters (who, what, on what, outcome, time range), pages newest first,
// and exports (CSV, JSON) of everything the filters match. People and spaces are shown by name; the filter "on"
// takes an e-mail address or a space name and asks the server by id.
import * as z from 'zod';
import { AuditChainStatus } from '@kluis/shared';
import { api, fetchFile } from './api.js';
import { formatDate, formatDateTime, formatNumber, t, type Key } from './i18n.js';
import { button, el } from '../common/ui.js';
import { loadPeople, loadSpaces, note, table, type Me } from './views.js';

const PAGE = 25;
const Entry = z.object({
  seq: z.number().int(), ts: z.number().int(), actorUserId: z.string().nullable(), action: z.string(), targetType: z.string().nullable(),
  targetId: z.string().nullable(), outcome: z.enum(['success', 'denied', 'failed']), ip: z.string().nullable(),
});
const Entries = z.object({ entries: z.array(Entry) });
const ACTIONS = ['auth.login', 'auth.logout', 'invite.create', 'org.role.change', 'space.create', 'space.member.add', 'link.create', 'link.access', 'link.revoke', 'totp.verify', 'totp.reset', 'audit.search', 'audit.export', 'policy.change', 'security.change'];

interface Filters {
  actor: string;
  action: string;
  target: string;
  outcome: string;
  from: string;
  until: string;
}

// Kept while the console is open, so that leaving the view and coming back shows the same search.
let filters: Filters = { actor: '', action: '', target: '', outcome: '', from: '', until: '' };
/** beforeSeq of each page opened so far (undefined: the newest page). */
let pages: (number | undefined)[] = [undefined];

interface Names {
  users: Map<string, string>;
  spaces: Map<string, string>;
}

/** The query string of the filters; null with the text of a target that names nobody. */
function query(f: Filters, names: Names): { q: URLSearchParams } | { unknownTarget: string } {
  const q = new URLSearchParams();
  if (f.actor) q.set('actor', f.actor);
  if (f.action.trim()) q.set('action', f.action.trim());
  if (f.outcome) q.set('outcome', f.outcome);
  if (f.from) q.set('since', String(new Date(f.from).getTime()));
  if (f.until) q.set('until', String(new Date(f.until).getTime()));
  const target = f.target.trim();
  if (target) {
    const lower = target.toLowerCase();
    const byName = (m: Map<string, string>, match: (v: string) => boolean) => [...m].find(([, v]) => match(v))?.[0];
    const id = byName(names.users, (v) => v === lower) ?? byName(names.spaces, (v) => v.toLowerCase() === lower) ?? (/^[A-Za-z0-9_-]{22}$/.test(target) ? target : undefined);
    if (!id) return { unknownTarget: target };
    q.set('target', id);
  }
  return { q };
}

export async function renderAudit(me: Me): Promise<HTMLElement[]> {
  const isAdmin = me.role === 'main_admin' || me.role === 'backup_admin';
  const [people, spaces] = await Promise.all([loadPeople(me), isAdmin ? loadSpaces(me) : Promise.resolve([])]);
  const names: Names = { users: new Map(people.map((u) => [u.userId, u.email])), spaces: new Map(spaces.map((s) => [s.spaceId, s.name])) };
  const chain = el('div', { class: 'chain', id: 'chain', role: 'status' }, t('chain.checking'));
  const results = el('div', { id: 'results' });
  const form = filterForm(names, () => {
    pages = [undefined];
    void showPage(me, names, results);
  });
  const exports = el('div', { class: 'exports', role: 'group', 'aria-label': t('audit.export') });
  exports.append(
    button(t('audit.csv'), () => void exportAs(me, names, 'csv'), 'secondary', 'export-csv'),
    button(t('audit.json'), () => void exportAs(me, names, 'json'), 'secondary', 'export-json'),
  );
  void api('GET', `/api/v1/orgs/${me.orgId}/audit/status`, undefined, AuditChainStatus).then((s) => {
    chain.dataset.ok = String(s.ok);
    chain.textContent = s.ok ? t('chain.ok', { n: formatNumber(s.entries), date: formatDate(s.verifiedAt) }) : t('chain.broken', { seq: s.firstBroken?.seq ?? '?', reason: s.firstBroken?.reason ?? '' });
  }, (err: unknown) => {
    chain.textContent = t('error.load', { message: err instanceof Error ? err.message : String(err) });
  });
  await showPage(me, names, results);
  return [chain, form, exports, results];
}

function filterForm(names: Names, apply: () => void): HTMLElement {
  const form = el('form', { class: 'filters', id: 'filters', novalidate: '', 'aria-label': t('audit.filters') });
  const fields = el('div', { class: 'filter-grid' });
  const add = (id: keyof Filters, label: Key, input: HTMLElement) => {
    input.id = `f-${id}`;
    input.setAttribute('name', id);
    (input as HTMLInputElement).value = filters[id];
    const box = el('div', { class: 'filter' });
    box.append(el('label', { for: `f-${id}` }, t(label)), input);
    fields.append(box);
  };
  const select = (options: [string, string][]) => {
    const s = el('select');
    for (const [value, text] of options) s.append(el('option', { value }, text));
    return s;
  };
  const people = [...names.users].sort((a, b) => a[1].localeCompare(b[1]));
  add('actor', 'audit.actor', select([['', t('audit.any')], ...people]));
  const action = el('input', { type: 'text', list: 'actions', autocomplete: 'off', spellcheck: 'false' });
  const list = el('datalist', { id: 'actions' });
  for (const a of ACTIONS) list.append(el('option', { value: a }));
  add('action', 'audit.action', action);
  add('target', 'audit.target', el('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' }));
  add('outcome', 'audit.outcome', select([['', t('audit.any')], ...(['success', 'denied', 'failed'] as const).map((o) => [o, t(`outcome.${o}`)] as [string, string])]));
  add('from', 'audit.from', el('input', { type: 'datetime-local' }));
  add('until', 'audit.until', el('input', { type: 'datetime-local' }));
  const read = () => {
    const value = (id: keyof Filters) => (form.querySelector(`#f-${id}`) as HTMLInputElement).value;
    filters = { actor: value('actor'), action: value('action'), target: value('target'), outcome: value('outcome'), from: value('from'), until: value('until') };
  };
  const buttons = el('div', { class: 'filter-buttons' });
  const applyButton = el('button', { type: 'submit', class: 'primary inline', id: 'apply' }, t('audit.apply'));
  buttons.append(applyButton, button(t('audit.clear'), () => {
    for (const input of form.querySelectorAll('input, select')) (input as HTMLInputElement).value = '';
    read();
    apply();
  }, 'secondary', 'clear'));
  form.append(fields, list, buttons);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    read();
    apply();
  });
  return form;
}

function targetText(e: z.infer<typeof Entry>, me: Me, names: Names): string {
  if (!e.targetType) return '—';
  if (e.targetType === 'user' && e.targetId && names.users.has(e.targetId)) return names.users.get(e.targetId)!;
  if (e.targetType === 'space' && e.targetId && names.spaces.has(e.targetId)) return names.spaces.get(e.targetId)!;
  if (e.targetType === 'org' && e.targetId === me.orgId) return me.orgName;
  return `${e.targetType} ${e.targetId ? e.targetId.slice(0, 8) + '…' : ''}`.trim();
}

async function showPage(me: Me, names: Names, into: HTMLElement): Promise<void> {
  const built = query(filters, names);
  if ('unknownTarget' in built) {
    into.replaceChildren(el('p', { class: 'problem', role: 'alert' }, t('audit.unknownTarget', { text: built.unknownTarget })));
    return;
  }
  const q = built.q;
  q.set('order', 'desc');
  q.set('limit', String(PAGE + 1));
  const before = pages[pages.length - 1];
  if (before !== undefined) q.set('beforeSeq', String(before));
  let entries: z.infer<typeof Entry>[];
  try {
    entries = (await api('GET', `/api/v1/orgs/${me.orgId}/audit?${q}`, undefined, Entries)).entries;
  } catch (err) {
    into.replaceChildren(el('p', { class: 'problem', role: 'alert' }, t('error.load', { message: err instanceof Error ? err.message : String(err) })));
    return;
  }
  const more = entries.length > PAGE;
  const shown = entries.slice(0, PAGE);
  const rows = shown.map((e) => [
    formatDateTime(e.ts), e.actorUserId ? (names.users.get(e.actorUserId) ?? e.actorUserId) : t('audit.system'), e.action, targetText(e, me, names),
    el('span', { class: `outcome outcome-${e.outcome}` }, t(`outcome.${e.outcome}`)), e.ip ?? '—',
  ]);
  const pager = el('nav', { class: 'pager', 'aria-label': t('audit.page', { n: pages.length }) });
  const newer = button(t('audit.newer'), () => {
    pages.pop();
    void showPage(me, names, into);
  }, 'secondary', 'newer');
  newer.disabled = pages.length === 1;
  const older = button(t('audit.older'), () => {
    pages.push(shown[shown.length - 1]!.seq);
    void showPage(me, names, into);
  }, 'secondary', 'older');
  older.disabled = !more;
  pager.append(newer, el('span', { class: 'page-no' }, t('audit.page', { n: pages.length })), older);
  into.replaceChildren(table('audit', t('audit.caption', { org: me.orgName }), ['col.time', 'col.actor', 'col.action', 'col.target', 'col.outcome', 'col.ip'], rows), pager);
}

async function exportAs(me: Me, names: Names, format: 'csv' | 'json'): Promise<void> {
  const built = query(filters, names);
  if ('unknownTarget' in built) return note(t('audit.unknownTarget', { text: built.unknownTarget }));
  built.q.set('format', format);
  const file = await fetchFile(`/api/v1/orgs/${me.orgId}/audit/export?${built.q}`, `kluis-audit.${format}`);
  const url = URL.createObjectURL(file.blob);
  const a = el('a', { href: url, download: file.name }) as HTMLAnchorElement;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  note(t('audit.exported', { name: file.name }));
}
