// The Devices view (docs/admin.md "Devices"; docs/api.md "Device administration and remote wipe"): every device of
// the organisation with its owner, status and last contact, the progress of a wipe (ordered, delivered, reported with
// the report's counts), and the two acts: sign the device out, or sign it out and order a wipe, each confirmed with
// what it does and, for the wipe, its limits.
import { OrgDeviceList, type OrgDevice } from '@kluis/shared';
import { api } from './api.js';
import { ask } from './dialog.js';
import { formatBytes, formatDate, formatDateTime, formatNumber, t, type Key } from './i18n.js';
import { button, el } from '../common/ui.js';
import { attempt, email, note, table, type Me } from './views.js';

export async function devices(me: Me, again: () => void): Promise<HTMLElement[]> {
  const list = (await api('GET', `/api/v1/orgs/${me.orgId}/devices`, undefined, OrgDeviceList)).devices;
  const rows = list.map((d) => {
    const name = el('span', {}, d.name);
    if (d.client) name.append(el('span', { class: 'meta block' }, d.client));
    return [email(d.ownerEmail), name, el('span', { class: `state state-${d.status}` }, t(`device.${d.status}` as Key)), formatDate(d.lastSeenAt), wipeCell(d), actions(me, d, again)];
  });
  return [
    el('p', { class: 'lead' }, t('devices.intro')),
    table('devices', t('devices.caption', { org: me.orgName }), ['col.owner', 'col.device', 'col.state', 'col.lastContact', 'col.wipe', 'col.actions'], rows),
  ];
}

/** Where a wipe stands: ordered (by whom), delivered, reported with what the device removed. */
function wipeCell(d: OrgDevice): HTMLElement {
  const w = d.wipe;
  if (!w) return el('span', { class: 'meta' }, '—');
  const list = el('ul', { class: 'steps' });
  list.append(el('li', {}, t(w.orderedByEmail ? 'wipe.ordered.by' : 'wipe.ordered', { date: formatDateTime(w.orderedAt), email: w.orderedByEmail ?? '' })));
  list.append(el('li', { class: w.deliveredAt ? '' : 'meta' }, w.deliveredAt ? t('wipe.delivered', { date: formatDateTime(w.deliveredAt) }) : t('wipe.notDelivered')));
  if (w.reportedAt !== null) {
    list.append(el('li', {}, t('wipe.reported', { date: formatDateTime(w.reportedAt) })));
    list.append(el('li', { class: 'counts' }, t('wipe.counts', {
      files: formatNumber(w.filesRemoved ?? 0), bytes: formatBytes(w.bytesRemoved ?? 0), folders: formatNumber(w.folders ?? 0),
    })));
    list.append(el('li', { class: w.unsynced ? 'warn' : 'meta' }, t('wipe.unsynced', { n: formatNumber(w.unsynced ?? 0) })));
    if (w.failed) list.append(el('li', { class: 'warn' }, t('wipe.failed', { n: formatNumber(w.failed) })));
  } else if (w.deliveredAt) {
    list.append(el('li', { class: 'meta' }, t('wipe.noReport')));
  }
  return list;
}

function actions(me: Me, d: OrgDevice, again: () => void): HTMLElement {
  const box = el('span', { class: 'actions' });
  if (d.status === 'active' || d.status === 'expired') {
    box.append(button(t('devices.revoke'), () => void act(me, d, false, again), 'small', `revoke-${d.deviceId}`));
  }
  if (d.status !== 'wipe-ordered' && d.status !== 'wiped') {
    box.append(button(t(d.status === 'revoked' ? 'devices.wipeOnly' : 'devices.wipe'), () => void act(me, d, true, again), 'danger', `wipe-${d.deviceId}`));
  }
  return box;
}

async function act(me: Me, d: OrgDevice, wipe: boolean, again: () => void): Promise<void> {
  const vars = { device: d.name, email: d.ownerEmail };
  const answer = await ask(wipe
    ? {
        title: t('wipe.confirm.title', vars),
        lines: [t('wipe.confirm.what', vars), t('wipe.confirm.when'), t('wipe.confirm.limits'), ...(['wipe.limit.offline', 'wipe.limit.copies', 'wipe.limit.unsynced', 'wipe.limit.account'] as const).map((k) => `• ${t(k)}`)],
        confirm: t('devices.wipe'),
        danger: true,
      }
    : { title: t('revoke.confirm.title', vars), lines: [t('revoke.confirm.what', vars), t('revoke.confirm.files')], confirm: t('devices.revoke') });
  if (answer === null) return;
  if (!(await attempt(api('POST', `/api/v1/orgs/${me.orgId}/devices/${d.deviceId}/revoke`, { wipe })))) return;
  again();
  note(t(wipe ? 'wipe.done' : 'revoke.done', vars));
}
