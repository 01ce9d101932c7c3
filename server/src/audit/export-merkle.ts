// Checking the Merkle part of a JSON audit export offline (docs/api.md "Audit", docs/crypto.md §12 "Merkle tree log"):
// every tree head's signature; for an export of the whole chain (seq 1 without gaps), the root recomputed at each head;
// and each entry's inclusion proof in the export's newest head (`kluis-admin audit export --proofs`).
import { auditLeafHash, fromHex, merkleHashesFromHex, merkleLeafHash, canonicalBytes, MerkleFrontier, SignedTreeHead, toHex, verifyAuditTreeHead, verifyMerkleInclusion } from '@kluis/shared';
import type { AuditEntry } from './types.js';
import { auditChainEntry } from './rows.js';

export function checkExportMerkle(doc: unknown, entries: readonly AuditEntry[], complete: boolean, trusted: ReadonlySet<string>): { problem?: string; treeHeads: number; included: number } {
  const d = doc as { treeHeads?: unknown; treeHead?: unknown; inclusion?: unknown };
  const out = { treeHeads: 0, included: 0 };
  const signed = (h: unknown, what: string): string | SignedTreeHead => {
    const p = SignedTreeHead.safeParse(h);
    if (!p.success) return `${what}: malformed`;
    if (!trusted.has(p.data.signer)) return `${what}: signed by an untrusted key ${p.data.signer}`;
    try {
      verifyAuditTreeHead(p.data, p.data.signature, p.data.signer);
    } catch {
      return `${what}: signature invalid`;
    }
    return p.data;
  };
  const heads: SignedTreeHead[] = [];
  for (const h of Array.isArray(d.treeHeads) ? d.treeHeads : []) {
    const r = signed(h, `tree head of size ${(h as { size?: unknown })?.size}`);
    if (typeof r === 'string') return { problem: r, ...out };
    heads.push(r);
  }
  if (complete && heads.length) {
    const bySize = new Map(heads.map((h) => [h.size, h]));
    const tree = new MerkleFrontier();
    for (const e of entries) {
      tree.push(merkleLeafHash(canonicalBytes(auditChainEntry(e))));
      const h = bySize.get(e.seq);
      if (h && h.root !== toHex(tree.root())) return { problem: `tree head of size ${h.size}: root does not match entries 1..${h.size}`, ...out };
      if (h) out.treeHeads++;
    }
  }
  if (d.treeHead !== undefined && d.treeHead !== null) {
    const head = signed(d.treeHead, 'newest tree head');
    if (typeof head === 'string') return { problem: head, ...out };
    const paths = new Map<number, unknown>();
    for (const p of Array.isArray(d.inclusion) ? (d.inclusion as { seq: number; path: unknown }[]) : []) paths.set(p?.seq, p?.path);
    for (const e of entries) {
      const path = paths.get(e.seq);
      let ok = false;
      try {
        ok = Array.isArray(path) && verifyMerkleInclusion(e.seq - 1, head.size, fromHex(auditLeafHash(auditChainEntry(e))), merkleHashesFromHex(path as string[]), fromHex(head.root));
      } catch {
        ok = false;
      }
      if (!ok) return { problem: `entry ${e.seq}: not proven included in the tree head of size ${head.size}`, ...out };
      out.included++;
    }
    out.treeHeads++;
  }
  return out;
}
