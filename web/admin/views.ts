// The console's views over the API (docs/admin.md "The admin console"): spaces with class and members and links
// (revoke) here; people (people-view.ts), devices and remote wipe (devices-view.ts), domains (domains-view.ts) and the
// audit trail (audit-view.ts) in their own modules, routed from renderView. Each view loads what it shows when opened;
// names and e-mail addresses are shown, not ids.
import * as z from 'zod';
import { AdminLink, AdminSpace, OrgUser, type OrgRole } from '@kluis/shared';
import { ApiProblem, api } from './api.js';
import { formatDate, formatNumber, t, type Key } from './i18n.js';
import { button, el } from '../common/ui.js';
import { renderAudit } from './audit-view.js';
import { devices } from './devices-view.js';
import { domains } from './domains-view.js';
import { people } from './people-view.js';
import { incidents } from './incidents-view.js';

export interface Me {
  userId: string;
  email: string;
  role: OrgRole;
  orgId: string;
  orgName: string;
}

export type ViewName = 'people' | 'spaces' | 'links' | 'audit' | 'devices' | 'domains' | 'incidents';

/** The views a role may open, the first one opened after sign-in. Auditors read the audit trail and incidents, nothing else. */
export function viewsFor(role: OrgRole): ViewName[] {
  if (role === 'main_admin' || role === 'backup_admin') return ['people', 'spaces', 'links', 'audit', 'devices', 'domains', 'incidents'];
  if (role === 'auditor') return ['audit', 'incidents'];
  if (role === 'domain_admin') return ['people', 'devices'];
  return ['people'];
}

const Users = z.object({ users: z.array(OrgUser) });
const Spaces = z.object({ spaces: z.array(AdminSpace) });
const Links = z.object({ links: z.array(AdminLink) });

/** Loads the organisation's people (every admin role and auditors may list them). */
export async function loadPeople(me: Me): Promise<z.infer<typeof OrgUser>[]> {
  return (await api('GET', `/api/v1/orgs/${me.orgId}/users`, undefined, Users)).users;
}

/** Loads the organisation's spaces (main and backup admins). */
export async function loadSpaces(me: Me): Promise<AdminSpace[]> {
  return (await api('GET', `/api/v1/orgs/${me.orgId}/admin/spaces`, undefined, Spaces)).spaces;
}

/** A table with a caption and column headers (scope=col); cells are text or elements. */
export function table(id: string, caption: string, headers: Key[], rows: (string | HTMLElement)[][]): HTMLElement {
  const wrap = el('div', { class: 'table-wrap' });
  const tbl = el('table', { id });
  const head = el('tr');
  for (const h of headers) head.append(el('th', { scope: 'col' }, t(h)));
  const body = el('tbody');
  for (const r of rows) {
    const tr = el('tr');
    for (const [i, c] of r.entries()) {
      const td = el('td', { 'data-label': t(headers[i]!) });
      if (typeof c === 'string') td.textContent = c;
      else td.append(c);
      tr.append(td);
    }
    body.append(tr);
  }
  tbl.append(el('caption', {}, caption), el('thead'), body);
  tbl.querySelector('thead')!.append(head);
  wrap.append(tbl);
  if (rows.length === 0) wrap.append(el('p', { class: 'meta' }, t('empty')));
  return wrap;
}

/** An e-mail address kept on one line where there is room (a table cell). */
export function email(address: string): HTMLElement {
  return el('span', { class: 'email' }, address);
}

/** The polite status line of the view (results of acts, announced to screen readers). */
export function note(text: string): void {
  document.getElementById('status')!.textContent = text;
}

/** Runs an act; a refusal or failure is said in the status line (with the server's message). True when it worked. */
export async function attempt(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
    return true;
  } catch (err) {
    note(t('error.act', { message: err instanceof Error ? err.message : String(err) }));
    return false;
  }
}

export function renderView(section: HTMLElement, view: ViewName, me: Me, sessionEnded: () => void): void {
  note('');
  section.replaceChildren(el('h1', { id: 'title', tabindex: '-1' }, t(`view.${view}` as Key)), el('p', { class: 'meta', id: 'loading' }, t('loading')));
  const fail = (err: unknown) => {
    if (err instanceof ApiProblem && err.status === 401) return sessionEnded();
    section.querySelector('#loading')?.remove();
    section.append(el('p', { class: 'problem', role: 'alert' }, t('error.load', { message: err instanceof Error ? err.message : String(err) })));
  };
  const done = (...nodes: HTMLElement[]) => {
    section.querySelector('#loading')?.remove();
    section.append(...nodes);
  };
  const again = () => renderView(section, view, me, sessionEnded);
  const run = (p: Promise<HTMLElement[]>) => p.then((nodes) => done(...nodes), fail);
  switch (view) {
    case 'people':
      return void run(people(me, again));
    case 'spaces':
      return void run(spaces(me));
    case 'links':
      return void run(links(me, again));
    case 'audit':
      return void run(renderAudit(me));
    case 'devices':
      return void run(devices(me, again));
    case 'domains':
      return void run(domains(me, again));
    case 'incidents':
      return void run(incidents(me));
  }
}

async function spaces(me: Me): Promise<HTMLElement[]> {
  const list = await loadSpaces(me);
  const rows = list.map((s) => {
    const members = el('ul', { class: 'members' });
    for (const m of s.members) members.append(el('li', {}, `${m.email} (${t(`spaceRole.${m.role}` as Key)})`));
    return [s.name, el('span', { class: `class class-${s.classification}` }, t(`class.${s.classification}` as Key)), members, s.createdBy, formatDate(s.createdAt)];
  });
  return [table('spaces', t('spaces.caption', { org: me.orgName }), ['col.name', 'col.class', 'col.members', 'col.createdBy', 'col.created'], rows)];
}

async function links(me: Me, again: () => void): Promise<HTMLElement[]> {
  const list = (await api('GET', `/api/v1/orgs/${me.orgId}/admin/links`, undefined, Links)).links;
  const rows = list.map((l) => {
    const actions = el('span');
    if (l.state === 'active') actions.append(button(t('links.revoke'), () => void revoke(me, l, again), 'danger', `revoke-${l.linkId}`));
    const downloads = l.maxDownloads === null ? `${formatNumber(l.downloads)} (${t('unlimited')})` : t('links.of', { n: formatNumber(l.downloads), max: formatNumber(l.maxDownloads) });
    return [l.spaceName, l.purpose, l.createdByEmail, formatDate(l.expiresAt), downloads, el('span', { class: `state state-${l.state}` }, t(`state.${l.state}` as Key)), actions];
  });
  return [table('links', t('links.caption', { org: me.orgName }), ['col.space', 'col.purpose', 'col.createdBy', 'col.expires', 'col.downloads', 'col.state', 'col.actions'], rows)];
}

async function revoke(me: Me, link: AdminLink, again: () => void): Promise<void> {
  if (!confirm(t('links.revoke.confirm', { purpose: link.purpose }))) return;
  await api('DELETE', `/api/v1/orgs/${me.orgId}/admin/links/${link.linkId}`);
  again();
  note(t('links.revoked', { purpose: link.purpose }));
}
