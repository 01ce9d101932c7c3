// Background upkeep: version retention marks chunks dead, compaction rewrites packs that are mostly dead, and the
// orphan sweep removes objects a crash left without an index row. Run hourly by the server, and on demand by
// `kluis-admin maintenance`.
import type { Services } from '../context.js';
import { applyRetention, type RetentionResult } from './retention.js';
import type { CompactResult, SweepResult } from '../storage/chunks.js';

export interface MaintenanceResult {
  retention: RetentionResult;
  compaction: Omit<CompactResult, 'conflicts'> & { conflicts: number };
  sweep: SweepResult;
}

export async function runMaintenance(services: Services, options: { now?: number; graceMs?: number } = {}): Promise<MaintenanceResult> {
  const retention = await applyRetention(services.db, services.chunks, services.audit, options.now ?? Date.now());
  const compaction = { packsRewritten: 0, packsWritten: 0, chunksMoved: 0, deadChunksRemoved: 0, standaloneDeleted: 0, bytesFreed: 0, conflicts: 0 };
  for (const org of await services.db('orgs').select('id')) {
    const r = await services.chunks.compact(org.id);
    for (const key of Object.keys(compaction) as (keyof typeof compaction)[]) compaction[key] += r[key];
  }
  const sweep = await services.chunks.sweepOrphans({ graceMs: options.graceMs ?? 3_600_000 });
  if (compaction.packsRewritten || compaction.standaloneDeleted || sweep.orphanPacks || sweep.orphanChunks) {
    await services.db.transaction((trx) => services.audit.append(trx, {
      orgId: null, action: 'storage.compact', outcome: 'success', client: 'kluis-server',
      details: { packsRewritten: compaction.packsRewritten, chunksMoved: compaction.chunksMoved, bytesFreed: compaction.bytesFreed + sweep.bytesFreed, orphans: sweep.orphanPacks + sweep.orphanChunks },
    }));
  }
  return { retention, compaction, sweep };
}
