// The People view (docs/admin.md "People" and "Offboarding"): the organisation's people with role, status, 2-step
// state and last contact; main and backup admins reset 2-step verification, block, unblock and offboard, each after
// a confirmation that says what happens (offboarding: final, and the window until a manager's client rotates the
// keys). Nobody acts on their own account or on the main admin's; a backup admin not on another backup admin.
import * as z from 'zod';
import { OffboardAnswer, PersonView, TOTP_ROLES } from '@kluis/shared';
import { api } from './api.js';
import { ask } from './dialog.js';
import { formatDate, formatNumber, t, type Key } from './i18n.js';
import { button, el } from '../common/ui.js';
import { attempt, email, note, table, type Me } from './views.js';

const People = z.object({ people: z.array(PersonView) });
const Security = z.object({ totpRequiredForAdmins: z.boolean(), authenticators: z.array(z.object({ userId: z.string(), since: z.number() })) });

/** Whether `me` may block, unblock or offboard `p` (the server's rule, docs/api.md "People"; it checks again). */
function mayAct(me: Me, p: PersonView): boolean {
  if (p.userId === me.userId || p.role === 'main_admin') return false;
  if (me.role === 'main_admin') return true;
  return me.role === 'backup_admin' && p.role !== 'backup_admin';
}

export async function people(me: Me, again: () => void): Promise<HTMLElement[]> {
  const isAdmin = me.role === 'main_admin' || me.role === 'backup_admin';
  const base = `/api/v1/orgs/${me.orgId}`;
  const [list, security] = await Promise.all([
    api('GET', `${base}/people`, undefined, People).then((r) => r.people),
    isAdmin ? api('GET', `${base}/security`, undefined, Security) : Promise.resolve(null),
  ]);
  const enrolled = new Set(security?.authenticators.map((a) => a.userId) ?? []);
  const rows = list.map((p) => {
    const actions = el('span', { class: 'actions' });
    if (isAdmin && enrolled.has(p.userId) && p.userId !== me.userId) {
      actions.append(button(t('people.reset'), () => void resetTotp(base, p, again), 'small', `reset-${p.userId}`));
    }
    if (isAdmin && mayAct(me, p) && p.status !== 'offboarded') {
      if (p.status === 'active') actions.append(button(t('people.block'), () => void block(base, p, again), 'small', `block-${p.userId}`));
      else actions.append(button(t('people.unblock'), () => void unblock(base, p, again), 'small', `unblock-${p.userId}`));
      actions.append(button(t('people.offboard'), () => void offboard(base, p, again), 'danger', `offboard-${p.userId}`));
    }
    const role = el('span', {}, t(`role.${p.role}` as Key));
    if (p.domains.length) role.append(el('span', { class: 'meta block' }, p.domains.map((d) => d.name).join(', ')));
    const totp = !security ? '' : enrolled.has(p.userId) ? t('people.totp.on') : TOTP_ROLES.includes(p.role) ? t('people.totp.off') : '—';
    const seen = p.lastSeenAt === null ? t('people.never') : formatDate(p.lastSeenAt);
    return [email(p.email), role, el('span', { class: `state person-${p.status}` }, t(`person.${p.status}` as Key)), totp, seen, formatDate(p.createdAt), actions];
  });
  return [
    ...(security ? [el('p', { class: 'lead' }, t(security.totpRequiredForAdmins ? 'people.policy.on' : 'people.policy.off'))] : []),
    table('people', t('people.caption', { org: me.orgName }), ['col.email', 'col.role', 'col.account', 'col.totp', 'col.lastContact', 'col.since', 'col.actions'], rows),
  ];
}

async function resetTotp(base: string, p: PersonView, again: () => void): Promise<void> {
  const ok = await ask({ title: t('people.reset'), lines: [t('people.reset.confirm', { email: p.email })], confirm: t('people.reset') });
  if (ok === null || !(await attempt(api('DELETE', `${base}/users/${p.userId}/totp`)))) return;
  again();
  note(t('people.reset.done', { email: p.email }));
}

async function block(base: string, p: PersonView, again: () => void): Promise<void> {
  const vars = { email: p.email };
  const ok = await ask({ title: t('block.title', vars), lines: [t('block.what', vars), t('block.spaces')], confirm: t('people.block'), danger: true });
  if (ok === null || !(await attempt(api('POST', `${base}/people/${p.userId}/block`)))) return;
  again();
  note(t('block.done', vars));
}

async function unblock(base: string, p: PersonView, again: () => void): Promise<void> {
  const vars = { email: p.email };
  const ok = await ask({ title: t('unblock.title', vars), lines: [t('unblock.what', vars)], confirm: t('people.unblock') });
  if (ok === null || !(await attempt(api('POST', `${base}/people/${p.userId}/unblock`)))) return;
  again();
  note(t('unblock.done', vars));
}

async function offboard(base: string, p: PersonView, again: () => void): Promise<void> {
  const vars = { email: p.email };
  const ok = await ask({
    title: t('offboard.title', vars),
    lines: [t('offboard.what', vars), t('offboard.keys'), t('offboard.window'), t('offboard.final')],
    confirm: t('people.offboard'),
    danger: true,
  });
  if (ok === null) return;
  let answer: OffboardAnswer | undefined;
  if (!(await attempt(api('POST', `${base}/people/${p.userId}/offboard`, undefined, OffboardAnswer).then((a) => (answer = a))))) return;
  again();
  const stuck = answer!.spaces.filter((s) => s.managers === 0).length;
  note(t('offboard.done', { ...vars, n: formatNumber(answer!.spaces.length) }) + (stuck ? ` ${t('offboard.stuck', { n: formatNumber(stuck) })}` : ''));
}
