// The people of an organisation (docs/api.md "Administration: people"): list, block, unblock, offboard. Invitations
// are POST /orgs/:orgId/invites (routes/orgs.ts). Block and offboard end the person's event streams after the commit;
// offboarding tells the managers of each of their spaces' clients that a removal waits for them.
import type Router from '@koa/router';
import { ErrorCode } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Services } from '../context.js';
import { auditSuccess, pathId, route } from '../http.js';
import { adminContext } from './domains.js';
import { canAdminister, personDomains, requireAdminister, type AdminScope } from '../services/admin-scope.js';
import { blockPerson, findPerson, listPeople, offboardPerson, peopleOfDomains, unblockPerson, type PersonRow } from '../services/people.js';
import type { Db } from '../db/db.js';

/** An act on a person's account: the organisation's admins within their reach, never on oneself. */
async function requirePersonAct(db: Db, scope: AdminScope, person: PersonRow): Promise<void> {
  // A person's account belongs to the organisation, not to a domain: domain admins do not block or offboard.
  requireAdminister(scope, { kind: 'org' });
  requireAdminister(scope, { kind: 'person', userId: person.id, role: person.role, domainIds: await personDomains(db, person.id) });
  if (person.id === scope.userId) throw new DomainError(ErrorCode.Conflict, 'you cannot do this to your own account');
}

export function peopleRoutes(router: Router, services: Services): void {
  const { db, audit, events } = services;

  route(router, services, 'get', '/api/v1/orgs/:orgId/people', { action: 'person.list' }, async (ctx, caller) => {
    const { orgId, scope } = await adminContext(services, ctx, caller);
    let only: string[] | undefined;
    if (scope.role === 'domain_admin') only = await peopleOfDomains(db, [...scope.domains]);
    else requireAdminister(scope, { kind: 'org' });
    const people = await listPeople(db, orgId, only);
    await auditSuccess(services, ctx, caller, 'org', orgId, { count: people.length });
    ctx.body = { people };
  });

  for (const act of ['block', 'unblock', 'offboard'] as const) {
    route(router, services, 'post', `/api/v1/orgs/:orgId/people/:userId/${act}`, { action: `person.${act}` }, async (ctx, caller) => {
      const { orgId, scope, who } = await adminContext(services, ctx, caller);
      const userId = pathId(ctx, 'userId', 'user');
      const person = await findPerson(db, orgId, userId);
      await requirePersonAct(db, scope, person);
      if (act === 'block') {
        const sessionsEnded = await blockPerson(db, audit, who, userId);
        events.endSessions({ userId });
        ctx.body = { userId, status: 'blocked', sessionsEnded };
      } else if (act === 'unblock') {
        await unblockPerson(db, audit, who, userId);
        ctx.body = { userId, status: 'active' };
      } else {
        const answer = await offboardPerson(db, audit, who, userId);
        events.endSessions({ userId });
        for (const s of answer.spaces) events.removalPending(s.spaceId);
        ctx.body = answer;
      }
    });
  }

  /** For the admin console and device acts: may the caller administer this person? (no change, audited as a read) */
  route(router, services, 'get', '/api/v1/orgs/:orgId/people/:userId', { action: 'person.read' }, async (ctx, caller) => {
    const { orgId, scope } = await adminContext(services, ctx, caller);
    const userId = pathId(ctx, 'userId', 'user');
    const person = await findPerson(db, orgId, userId);
    if (!canAdminister(scope, { kind: 'person', userId, role: person.role, domainIds: await personDomains(db, userId) })) requireAdminister(scope, { kind: 'org' });
    const [view] = await listPeople(db, orgId, [userId]);
    await auditSuccess(services, ctx, caller, 'user', userId);
    ctx.body = view;
  });
}
