// `kluis-admin device list|revoke` (docs/cli.md "kluis-admin device"): the operator's view of an organisation's devices
// and its way to revoke one, with or without a remote wipe (services/devices.ts; the operator has an admin's rights in
// every organisation). Registered on the program of ./cli.ts, whose helpers it receives.
import type { Command } from 'commander';
import type { OrgDevice } from '@kluis/shared';
import type { OpenedServices } from '../services.js';
import { listOrgDevices, revokeDevice, type AuditWho } from '../services/devices.js';

export interface AdminHelpers {
  withServices<T>(fn: (s: OpenedServices) => Promise<T>): Promise<T>;
  findOrg(s: OpenedServices, ref: string): Promise<{ id: string; name: string }>;
  print(human: string, value: unknown): void;
  setJson(on: boolean): void;
  who: AuditWho;
}

const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().slice(0, 16).replace('T', ' '));

function line(d: OrgDevice): string {
  const wipe = d.wipe?.reportedAt != null ? ` (wiped ${iso(d.wipe.reportedAt)}: ${d.wipe.filesRemoved} files, ${d.wipe.unsynced} unsynced)` : d.wipe ? ` (ordered ${iso(d.wipe.orderedAt)}${d.wipe.deliveredAt ? `, delivered ${iso(d.wipe.deliveredAt)}` : ', not yet delivered'})` : '';
  return `${d.deviceId}  ${d.status.padEnd(12)}  ${d.ownerEmail}  "${d.name}"  last seen ${iso(d.lastSeenAt)}${wipe}`;
}

export function registerDeviceCommands(program: Command, h: AdminHelpers): void {
  const device = program.command('device').description('an organisation\'s devices: list, revoke, remote wipe');
  device.command('list').description('every device of an organisation, with its owner, state and wipe report')
    .requiredOption('--org <org>', 'organisation id or enterprise number')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      h.setJson(Boolean(o.json));
      const devices = await h.withServices(async (s) => {
        const org = await h.findOrg(s, o.org);
        const list = await listOrgDevices(s.db, org.id, null);
        await s.db.transaction((trx) => s.audit.append(trx, { orgId: org.id, ...h.who, action: 'device.admin.list', targetType: 'org', targetId: org.id, outcome: 'success', details: { count: list.length } }));
        return list;
      });
      h.print(devices.length ? devices.map(line).join('\n') : 'no devices', { devices });
    });
  device.command('revoke').description('sign a device out now; with --wipe it also deletes its keys, index and synced files at its next contact')
    .argument('<device>', 'the device id (device list shows it)')
    .requiredOption('--org <org>', 'organisation id or enterprise number')
    .option('--wipe', 'order the device to wipe itself')
    .option('--json', 'machine-readable output')
    .action(async (deviceId: string, o) => {
      h.setJson(Boolean(o.json));
      const d = await h.withServices(async (s) => {
        const org = await h.findOrg(s, o.org);
        const revoked = await s.db.transaction((trx) => revokeDevice(trx, s.audit, { orgId: org.id, deviceId, wipe: Boolean(o.wipe), admin: null }, h.who));
        // On PostgreSQL this reaches the server nodes (LISTEN/NOTIFY); on sqlite no stream lives in this process.
        s.events.endSessions({ deviceId });
        return revoked;
      });
      h.print(`${line(d)}\n${o.wipe ? 'The device wipes itself at its next contact with the server.' : 'Signed out (its files stay on it).'}`, d);
    });
}
