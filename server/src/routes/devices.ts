// Device administration and remote wipe (docs/api.md "Device administration and remote wipe"): the organisation's
// device list and revocation for its admins, the device key a client registers for its session, and the two routes a
// device calls with its own token after it was signed out: the wipe check and the signed wipe report.
import type Router from '@koa/router';
import { DeviceKeyRequest, DeviceRevokeRequest, ErrorCode, WipeReportRequest } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import { actor, auditSuccess, body, type KCtx, meta, parse, pathId, publicRoute, route, target } from '../http.js';
import { bearer } from '../auth/sessions.js';
import { checkWipe, listOrgDevices, recordWipeReport, registerDeviceKey, requireDeviceAdmin, revokeDevice, wipeReportOf } from '../services/devices.js';
import { requireStepUp } from '../services/totp.js';

/** The organisation in the path must be the caller's; another answers 404 (as routes/orgs.ts does). */
function ownOrg(ctx: KCtx, caller: Caller): string {
  const orgId = pathId(ctx, 'orgId', 'org');
  if (orgId !== caller.orgId) throw new DomainError(ErrorCode.NotFound, 'no such organisation');
  return orgId;
}

export function deviceRoutes(router: Router, services: Services): void {
  const { db, audit } = services;

  route(router, services, 'get', '/api/v1/orgs/:orgId/devices', { action: 'device.admin.list' }, async (ctx, caller) => {
    const orgId = ownOrg(ctx, caller);
    requireDeviceAdmin(caller);
    await requireStepUp(services, caller);
    const devices = await listOrgDevices(db, orgId, caller);
    await auditSuccess(services, ctx, caller, 'org', orgId, { count: devices.length });
    ctx.body = { devices };
  });

  route(router, services, 'post', '/api/v1/orgs/:orgId/devices/:deviceId/revoke', { action: 'device.admin.revoke' }, async (ctx, caller) => {
    const orgId = ownOrg(ctx, caller);
    const deviceId = pathId(ctx, 'deviceId', 'device');
    requireDeviceAdmin(caller);
    await requireStepUp(services, caller);
    const { wipe } = parse(DeviceRevokeRequest, body(ctx));
    const device = await db.transaction((trx) => revokeDevice(trx, audit, { orgId, deviceId, wipe, admin: caller }, actor(ctx, caller)));
    // After the commit, as logout does: the device's open event streams end now (on every node).
    services.events.endSessions({ deviceId });
    ctx.body = device;
  });

  route(router, services, 'put', '/api/v1/devices/current/key', { action: 'device.key.register' }, async (ctx, caller) => {
    target(ctx, 'device', caller.deviceId);
    const { publicKey } = parse(DeviceKeyRequest, body(ctx));
    await db.transaction((trx) => registerDeviceKey(trx, audit, { orgId: caller.orgId, deviceId: caller.deviceId, publicKey }, actor(ctx, caller)));
    ctx.status = 204;
  });

  route(router, services, 'get', '/api/v1/devices/:deviceId/wipe-report', { action: 'device.wipe.read' }, async (ctx, caller) => {
    const deviceId = pathId(ctx, 'deviceId', 'device');
    const record = await wipeReportOf(db, caller, deviceId);
    await auditSuccess(services, ctx, caller, 'device', deviceId);
    ctx.body = record;
  });

  // The device's own calls: its token identifies it even after revocation or expiry (services/devices.ts).
  const setOrg = (ctx: KCtx) => (orgId: string, deviceId: string) => {
    ctx.state.orgId = orgId;
    target(ctx, 'device', deviceId);
  };

  publicRoute(router, 'post', '/api/v1/device-wipe/check', 'device.wipe.check', async (ctx) => {
    ctx.body = await db.transaction((trx) => checkWipe(trx, audit, bearer(ctx), meta(ctx), setOrg(ctx)));
  });

  publicRoute(router, 'post', '/api/v1/device-wipe/report', 'device.wipe.report', async (ctx) => {
    const token = bearer(ctx);
    if (!token) throw new DomainError(ErrorCode.Unauthenticated, 'the device\'s session token is required');
    const req = parse(WipeReportRequest, body(ctx));
    ctx.body = await db.transaction((trx) => recordWipeReport(trx, audit, { token, report: req.report, signature: req.signature }, meta(ctx), setOrg(ctx)));
  });
}
