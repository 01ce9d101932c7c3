// The Domains view (docs/admin.md "Roles and delegation"; docs/api.md "Administration"): each domain with its spaces
// and domain admins; create, rename and delete a domain, appoint and remove a domain admin, and put a space in a
// domain (or in none). Main and backup admins only; the server checks every act again.
import * as z from 'zod';
import { AdminSpaceView, DomainView, PersonView } from '@kluis/shared';
import { api } from './api.js';
import { ask } from './dialog.js';
import { t, type Key } from './i18n.js';
import { button, el } from '../common/ui.js';
import { attempt, note, table, type Me } from './views.js';

const Domains = z.object({ domains: z.array(DomainView) });
const Spaces = z.object({ spaces: z.array(AdminSpaceView) });
const People = z.object({ people: z.array(PersonView) });

export async function domains(me: Me, again: () => void): Promise<HTMLElement[]> {
  const base = `/api/v1/orgs/${me.orgId}`;
  const [ds, spaces, people] = await Promise.all([
    api('GET', `${base}/domains`, undefined, Domains).then((r) => r.domains),
    api('GET', `${base}/spaces`, undefined, Spaces).then((r) => r.spaces),
    api('GET', `${base}/people`, undefined, People).then((r) => r.people),
  ]);
  // Who may be appointed: active members and domain admins (docs/api.md: 409 for anyone else).
  const candidates = people.filter((p) => p.status === 'active' && (p.role === 'member' || p.role === 'domain_admin'));
  const list = el('div', { class: 'domains', id: 'domain-list' });
  for (const d of ds) list.append(domainCard(base, d, spaces.filter((s) => s.domainId === d.domainId).map((s) => s.name), candidates, again));
  if (ds.length === 0) list.append(el('p', { class: 'meta' }, t('domains.none')));
  const create = button(t('domains.create'), () => void createDomain(base, again), 'primary', 'domain-create');
  create.classList.add('inline');
  const toolbar = el('div', { class: 'toolbar' });
  toolbar.append(create);
  return [el('p', { class: 'lead' }, t('domains.intro')), toolbar, list, spacesTable(base, spaces, ds, again)];
}

function domainCard(base: string, d: DomainView, spaceNames: string[], candidates: PersonView[], again: () => void): HTMLElement {
  const card = el('section', { class: 'domain', 'aria-labelledby': `d-${d.domainId}`, 'data-name': d.name });
  const head = el('div', { class: 'domain-head' });
  head.append(
    el('h2', { id: `d-${d.domainId}` }, d.name),
    button(t('domains.rename'), () => void rename(base, d, again), 'small', `rename-${d.domainId}`),
    button(t('domains.delete'), () => void remove(base, d, again), 'danger', `delete-${d.domainId}`),
  );
  const spaces = el('ul', { class: 'plain' });
  for (const n of spaceNames) spaces.append(el('li', {}, n));
  if (spaceNames.length === 0) spaces.append(el('li', { class: 'meta' }, t('domains.noSpaces')));
  const admins = el('ul', { class: 'plain' });
  for (const a of d.admins) {
    const li = el('li', {}, a.email);
    li.append(button(t('domains.admin.remove'), () => void dismiss(base, d, a, again), 'small', `dismiss-${d.domainId}-${a.userId}`));
    admins.append(li);
  }
  if (d.admins.length === 0) admins.append(el('li', { class: 'meta' }, t('domains.noAdmins')));
  const pick = el('select', { id: `appoint-${d.domainId}` }) as HTMLSelectElement;
  pick.append(el('option', { value: '' }, t('domains.admin.choose')));
  for (const p of candidates.filter((c) => !d.admins.some((a) => a.userId === c.userId))) pick.append(el('option', { value: p.userId }, p.email));
  const appoint = button(t('domains.admin.appoint'), () => void appointAdmin(base, d, pick, candidates, again), 'small', `appoint-btn-${d.domainId}`);
  const row = el('div', { class: 'inline-form' });
  row.append(pick, appoint);
  card.append(
    head,
    el('h3', {}, t('domains.spaces')), spaces,
    el('h3', {}, t('domains.admins')), admins,
    el('label', { for: `appoint-${d.domainId}` }, t('domains.admin.appointLabel', { name: d.name })), row,
  );
  return card;
}

function spacesTable(base: string, spaces: AdminSpaceView[], ds: DomainView[], again: () => void): HTMLElement {
  const rows = spaces.map((s) => {
    const sel = el('select', { id: `space-domain-${s.spaceId}`, 'aria-label': t('domains.space.label', { space: s.name }) }) as HTMLSelectElement;
    sel.append(el('option', { value: '' }, t('domains.space.none')));
    for (const d of ds) sel.append(el('option', { value: d.domainId }, d.name));
    sel.value = s.domainId ?? '';
    const save = button(t('domains.space.save'), () => void place(base, s, sel, ds, again), 'small', `space-save-${s.spaceId}`);
    const cell = el('div', { class: 'inline-form' });
    cell.append(sel, save);
    return [s.name, el('span', { class: `class class-${s.classification}` }, t(`class.${s.classification}` as Key)), cell];
  });
  const wrap = el('div', { class: 'section' });
  wrap.append(el('h2', {}, t('domains.space.title')), table('domain-spaces', t('domains.space.caption'), ['col.space', 'col.class', 'col.domain'], rows));
  return wrap;
}

async function createDomain(base: string, again: () => void): Promise<void> {
  const name = await ask({ title: t('domains.create'), lines: [t('domains.create.what')], confirm: t('domains.create'), input: { label: t('col.name'), value: '' } });
  if (!name || !(await attempt(api('POST', `${base}/domains`, { name })))) return;
  again();
  note(t('domains.created', { name }));
}

async function rename(base: string, d: DomainView, again: () => void): Promise<void> {
  const name = await ask({ title: t('domains.rename.title', { name: d.name }), lines: [], confirm: t('domains.rename'), input: { label: t('col.name'), value: d.name } });
  if (!name || name === d.name || !(await attempt(api('PATCH', `${base}/domains/${d.domainId}`, { name })))) return;
  again();
  note(t('domains.renamed', { old: d.name, name }));
}

async function remove(base: string, d: DomainView, again: () => void): Promise<void> {
  const ok = await ask({ title: t('domains.delete.title', { name: d.name }), lines: [t('domains.delete.what')], confirm: t('domains.delete'), danger: true });
  if (ok === null || !(await attempt(api('DELETE', `${base}/domains/${d.domainId}`)))) return;
  again();
  note(t('domains.deleted', { name: d.name }));
}

async function appointAdmin(base: string, d: DomainView, pick: HTMLSelectElement, people: PersonView[], again: () => void): Promise<void> {
  const person = people.find((p) => p.userId === pick.value);
  if (!person) return note(t('domains.admin.chooseFirst'));
  if (!(await attempt(api('POST', `${base}/domains/${d.domainId}/admins`, { userId: person.userId })))) return;
  again();
  note(t('domains.admin.appointed', { email: person.email, name: d.name }));
}

async function dismiss(base: string, d: DomainView, a: { userId: string; email: string }, again: () => void): Promise<void> {
  const ok = await ask({ title: t('domains.admin.remove.title', { email: a.email, name: d.name }), lines: [t('domains.admin.remove.what')], confirm: t('domains.admin.remove') });
  if (ok === null || !(await attempt(api('DELETE', `${base}/domains/${d.domainId}/admins/${a.userId}`)))) return;
  again();
  note(t('domains.admin.removed', { email: a.email, name: d.name }));
}

async function place(base: string, s: AdminSpaceView, sel: HTMLSelectElement, ds: DomainView[], again: () => void): Promise<void> {
  const domainId = sel.value || null;
  if (!(await attempt(api('PUT', `${base}/spaces/${s.spaceId}/domain`, { domainId })))) return;
  again();
  const d = ds.find((x) => x.domainId === domainId);
  note(d ? t('domains.space.placed', { space: s.name, name: d.name }) : t('domains.space.unplaced', { space: s.name }));
}
