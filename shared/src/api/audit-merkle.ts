// Wire types of the audit trail's Merkle tree log (docs/api.md "Audit: tree heads and proofs", docs/crypto.md §12
// "Merkle tree log"): signed tree heads, inclusion proofs of entries and consistency proofs between heads.
import * as z from 'zod';
import { Key32, Sig } from './schemas.js';

const Hex32 = z.string().regex(/^[0-9a-f]{64}$/);
const Size = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const Ms = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** The server vouches that the first `size` entries of the trail have Merkle root `root`, as of `ts`. */
export const SignedTreeHead = z.object({ size: Size, root: Hex32, ts: Ms, signer: Key32, signature: Sig }).strict();
export type SignedTreeHead = z.infer<typeof SignedTreeHead>;

/** GET /api/v1/orgs/:orgId/audit/tree-heads: heads with size > `after`, oldest first, and the newest one. */
export const TreeHeadList = z.object({ heads: z.array(SignedTreeHead), latest: SignedTreeHead.nullable() }).strict();
export type TreeHeadList = z.infer<typeof TreeHeadList>;

/** GET /api/v1/orgs/:orgId/audit/proofs/inclusion?seq=S&size=N: entry S (leaf S−1) in the tree of the head of size N. */
export const InclusionProof = z.object({ seq: Size, size: Size, leafHash: Hex32, path: z.array(Hex32).max(64), head: SignedTreeHead }).strict();
export type InclusionProof = z.infer<typeof InclusionProof>;

/** GET /api/v1/orgs/:orgId/audit/proofs/consistency?from=M&to=N: the head of size M is a prefix of the head of size N. */
export const ConsistencyProof = z.object({ from: SignedTreeHead, to: SignedTreeHead, path: z.array(Hex32).max(128) }).strict();
export type ConsistencyProof = z.infer<typeof ConsistencyProof>;

/** What a witness found wrong (docs/operations.md "Audit witness"). */
export const WitnessAlertKind = z.enum(['fork', 'rollback', 'bad-signature', 'key-changed']);
export type WitnessAlertKind = z.infer<typeof WitnessAlertKind>;

/** POST /api/v1/orgs/:orgId/audit/witness-alerts: a witness reports an alarm; it becomes an audit.witness.alert entry. */
export const WitnessAlertRequest = z.object({
  kind: WitnessAlertKind,
  reason: z.string().min(1).max(500),
  heldSize: Size.nullable(),
  heldRoot: Hex32.nullable(),
  seenSize: Size.nullable(),
  seenRoot: Hex32.nullable(),
}).strict();
export type WitnessAlertRequest = z.infer<typeof WitnessAlertRequest>;
