// The console's views over the API (docs/admin.md "The admin console"): people and roles, spaces with class and
// members, links (revoke), the audit trail (audit-view.ts), and the places kept for Devices and Domains. Each view
// loads what it shows when opened; names and e-mail addresses are shown, not ids.
import { z } from 'zod';
import { AdminLink, AdminSpace, OrgUser, TOTP_ROLES, type OrgRole } from '@kluis/shared';
import { ApiProblem, api } from './api.js';
import { formatDate, formatNumber, t, type Key } from './i18n.js';
import { button, el } from '../common/ui.js';
import { renderAudit } from './audit-view.js';

export interface Me {
  userId: string;
  email: string;
  role: OrgRole;
  orgId: string;
  orgName: string;
}

// PLACEHOLDER (issue 18 items 1 and 2, built on other branches): 'devices' (GET /api/v1/orgs/:orgId/devices, revoke
// with wipe) and 'domains' are listed so the navigation has their place; renderView shows "not available yet" until
// the lead wires them after the merge.
export type ViewName = 'people' | 'spaces' | 'links' | 'audit' | 'devices' | 'domains';

/** The views a role may open, the first one opened after sign-in. Auditors read the audit trail and nothing else. */
export function viewsFor(role: OrgRole): ViewName[] {
  if (role === 'main_admin' || role === 'backup_admin') return ['people', 'spaces', 'links', 'audit', 'devices', 'domains'];
  if (role === 'auditor') return ['audit'];
  return ['people'];
}

const Users = z.object({ users: z.array(OrgUser) });
const Security = z.object({ totpRequiredForAdmins: z.boolean(), authenticators: z.array(z.object({ userId: z.string(), since: z.number() })) });
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

/** The polite status line of the view (results of acts, announced to screen readers). */
export function note(text: string): void {
  document.getElementById('status')!.textContent = text;
}

export function renderView(section: HTMLElement, view: ViewName, me: Me, sessionEnded: () => void): void {
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
    default:
      return done(el('p', { class: 'lead', id: 'soon' }, t('soon')));
  }
}

async function people(me: Me, again: () => void): Promise<HTMLElement[]> {
  const isAdmin = me.role === 'main_admin' || me.role === 'backup_admin';
  const [users, security] = await Promise.all([loadPeople(me), api('GET', `/api/v1/orgs/${me.orgId}/security`, undefined, Security)]);
  const enrolled = new Set(security.authenticators.map((a) => a.userId));
  const rows = users.map((u) => {
    const actions = el('span');
    if (isAdmin && enrolled.has(u.userId) && u.userId !== me.userId) {
      actions.append(button(t('people.reset'), () => void resetTotp(me, u.userId, u.email, again), 'small', `reset-${u.userId}`));
    }
    return [u.email, t(`role.${u.role}` as Key), enrolled.has(u.userId) ? t('people.totp.on') : TOTP_ROLES.includes(u.role) ? t('people.totp.off') : '—', formatDate(u.createdAt), t(u.disabled ? 'people.disabled' : 'people.active'), actions];
  });
  return [
    el('p', { class: 'lead' }, t(security.totpRequiredForAdmins ? 'people.policy.on' : 'people.policy.off')),
    table('people', t('people.caption', { org: me.orgName }), ['col.email', 'col.role', 'col.totp', 'col.since', 'col.account', 'col.actions'], rows),
  ];
}

async function resetTotp(me: Me, userId: string, email: string, again: () => void): Promise<void> {
  if (!confirm(t('people.reset.confirm', { email }))) return;
  await api('DELETE', `/api/v1/orgs/${me.orgId}/users/${userId}/totp`);
  again();
  note(t('people.reset.done', { email }));
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
