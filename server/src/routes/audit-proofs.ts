// The audit trail's Merkle tree log over HTTP (docs/api.md "Audit: tree heads and proofs"): signed tree heads, the
// inclusion proof of an organisation's entry and consistency proofs between heads, for the same readers as the audit
// search (main and backup admins and auditors of the organisation, step-up included). A witness (kluis-admin audit
// witness) polls the heads and proofs; every answer and refusal is audited like the search.
import type Router from '@koa/router';
import * as z from 'zod';
import { ErrorCode, WitnessAlertRequest, type ConsistencyProof, type InclusionProof, type OrgRole, type SignedTreeHead, type TreeHeadList } from '@kluis/shared';
import { DomainError } from '../domain-error.js';
import type { Caller, Services } from '../context.js';
import { actor, auditSuccess, body, type KCtx, parse, pathId, route } from '../http.js';
import { requireStepUp } from '../services/totp.js';


const READERS: OrgRole[] = ['main_admin', 'backup_admin', 'auditor'];
const size = z.string().regex(/^[1-9]\d{0,14}$/).transform(Number);

const HeadsQuery = z.object({
  after: z.string().regex(/^\d{1,15}$/).transform(Number).optional(),
  limit: z.string().regex(/^\d{1,4}$/).transform(Number).pipe(z.number().min(1).max(1000)).optional(),
}).strict();
const InclusionQuery = z.object({ seq: size, size: size.optional() }).strict();
const ConsistencyQuery = z.object({ from: size, to: size.optional() }).strict();

export function auditProofRoutes(router: Router, services: Services): void {
  const { audit } = services;

  const guard = async (ctx: KCtx, caller: Caller): Promise<string> => {
    const orgId = pathId(ctx, 'orgId', 'org');
    if (orgId !== caller.orgId) throw new DomainError(ErrorCode.NotFound, 'no such organisation');
    if (!READERS.includes(caller.role)) throw new DomainError(ErrorCode.Forbidden, 'the audit trail is for admins and auditors');
    await requireStepUp(services, caller);
    return orgId;
  };
  const head = async (wanted: number | undefined, what: string): Promise<SignedTreeHead> => {
    const found = await audit.treeHead(wanted);
    if (!found) throw new DomainError(ErrorCode.NotFound, wanted === undefined ? 'no tree head has been signed yet' : `${what}: no tree head of size ${wanted} (GET …/audit/tree-heads lists them)`);
    return found;
  };

  route(router, services, 'get', '/api/v1/orgs/:orgId/audit/tree-heads', { action: 'audit.tree-heads' }, async (ctx, caller) => {
    const orgId = await guard(ctx, caller);
    const q = parse(HeadsQuery, ctx.query);
    const heads = await audit.treeHeads(q.after ?? 0, q.limit ?? 100);
    const latest = await audit.treeHead();
    await auditSuccess(services, ctx, caller, 'org', orgId, { results: heads.length });
    ctx.body = { heads, latest } satisfies TreeHeadList;
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/audit/proofs/inclusion', { action: 'audit.proof' }, async (ctx, caller) => {
    const orgId = await guard(ctx, caller);
    const q = parse(InclusionQuery, ctx.query);
    const leaf = await audit.leaf(q.seq);
    // Another organisation's entry is as absent as a missing one: its leaf hash is not this reader's to see.
    if (!leaf || leaf.orgId !== orgId) throw new DomainError(ErrorCode.NotFound, `no entry ${q.seq} in this organisation's trail`);
    const th = await head(q.size, 'size');
    if (q.seq > th.size) throw new DomainError(ErrorCode.ValidationFailed, `seq: entry ${q.seq} is not in the tree of ${th.size} entries`);
    const path = await audit.inclusionProof(q.seq, th.size);
    await auditSuccess(services, ctx, caller, 'org', orgId, { seq: q.seq, size: th.size });
    ctx.body = { seq: q.seq, size: th.size, leafHash: leaf.leafHash, path, head: th } satisfies InclusionProof;
  });

  route(router, services, 'get', '/api/v1/orgs/:orgId/audit/proofs/consistency', { action: 'audit.proof' }, async (ctx, caller) => {
    const orgId = await guard(ctx, caller);
    const q = parse(ConsistencyQuery, ctx.query);
    const to = await head(q.to, 'to');
    if (q.from > to.size) throw new DomainError(ErrorCode.ValidationFailed, `from: ${q.from} is beyond the tree of ${to.size} entries`);
    const from = await head(q.from, 'from');
    const path = await audit.consistencyProof(from.size, to.size);
    await auditSuccess(services, ctx, caller, 'org', orgId, { from: from.size, to: to.size });
    ctx.body = { from, to, path } satisfies ConsistencyProof;
  });

  // A witness's alarm (kluis-admin audit witness): kept in the trail as a failed audit.witness.alert entry, the event
  // incident rules watch. A server that rewrote its history may also drop this entry: the witness keeps its own record.
  route(router, services, 'post', '/api/v1/orgs/:orgId/audit/witness-alerts', { action: 'audit.witness.alert' }, async (ctx, caller) => {
    const orgId = await guard(ctx, caller);
    const a = parse(WitnessAlertRequest, body(ctx));
    const details = { kind: a.kind, reason: a.reason, heldSize: a.heldSize, heldRoot: a.heldRoot, seenSize: a.seenSize, seenRoot: a.seenRoot };
    const seq = await services.tx((trx) => audit.append(trx, { ...actor(ctx, caller), action: 'audit.witness.alert', targetType: 'org', targetId: orgId, outcome: 'failed', details }));
    ctx.status = 201;
    ctx.body = { seq };
  });
}
