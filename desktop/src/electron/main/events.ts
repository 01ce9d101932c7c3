// Main → renderer events (docs/desktop.md "IPC"): the folders' status, coalesced to at most 10 a second however fast
// the engines report progress, and one activity event per thing that happened, with notifications for what the user
// must know (./notifications.ts). A pass that uploaded 10,000 files makes one `uploaded` activity with a count, not
// 10,000 events.
import type { AppEvent, FolderStatus } from '../ipc/contract.js';
import type { FolderThread } from './engine-proxy.js';
import type { Notifier } from './notifications.js';

export type Send = (event: AppEvent) => void;

/** Sends the folders' status at most once per `intervalMs` (default 100 ms: 10 a second), always the latest. */
export class StatusRelay {
  private last = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly statuses: () => Promise<FolderStatus[]>, private readonly send: Send, private readonly intervalMs = 100) {}

  /** Something changed: a status event goes out now, or at the end of the current interval. */
  changed(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => void this.fire(), this.untilDue());
  }

  private untilDue(): number {
    return Math.max(0, this.last + this.intervalMs - performance.now());
  }

  // The interval is kept between sends, not between timers: a timer may fire a millisecond early (libuv's cached
  // clock) and a status take a few to gather, and timed from the timer, 11 events fell in one second of the benchmark
  // once main's loop was free (the engines in threads).
  private async fire(): Promise<void> {
    try {
      let folders = await this.statuses();
      while (!this.stopped && this.untilDue() > 0) {
        await new Promise((resolve) => setTimeout(resolve, Math.ceil(this.untilDue())));
        folders = await this.statuses();
      }
      if (this.stopped) return;
      this.last = performance.now();
      this.send({ type: 'status', folders });
    } finally {
      this.timer = null;
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Turns a folder's door events into activity events and notifications; returns a function that detaches them. */
export function relayActivity(folder: FolderThread, folderId: string, spaceName: () => string, send: Send, notifier: Notifier): () => void {
  const activity = (kind: Extract<AppEvent, { type: 'activity' }>['kind'], path: string | null, detail: string | null, count?: number) =>
    send({ type: 'activity', at: Date.now(), folderId, kind, path, detail, ...(count !== undefined ? { count } : {}) });
  const onSynced = (r: { uploaded: number; downloaded: number; deletedLocal: number; deletedRemote: number; moved: number; errors: { path: string; reason: string }[] }) => {
    // Counts of items (files and folders: the engine versions both); the page words them in its language.
    if (r.uploaded) activity('uploaded', null, null, r.uploaded);
    if (r.downloaded) activity('downloaded', null, null, r.downloaded);
    if (r.deletedLocal + r.deletedRemote) activity('deleted', null, null, r.deletedLocal + r.deletedRemote);
    if (r.moved) activity('moved', null, null, r.moved);
    for (const e of r.errors.slice(0, 20)) {
      activity('error', e.path, e.reason);
      notifier.add({ kind: 'error', scope: spaceName(), path: e.path, detail: e.reason });
    }
  };
  const onConflict = ({ copyPath }: { copyPath: string }) => {
    activity('conflict', copyPath, null);
    notifier.add({ kind: 'conflict', scope: spaceName(), path: copyPath });
  };
  const onRefused = ({ path, reason }: { path: string; reason: string }) => {
    activity('refused', path, reason);
    notifier.add({ kind: 'refused', scope: spaceName(), path, detail: reason });
  };
  const onFailure = (err: Error) => {
    activity('error', null, err.message);
    notifier.add({ kind: 'error', scope: spaceName(), detail: err.message });
  };
  folder.on('synced', onSynced).on('conflict', onConflict).on('refused', onRefused).on('failure', onFailure);
  return () => {
    folder.off('synced', onSynced).off('conflict', onConflict).off('refused', onRefused).off('failure', onFailure);
  };
}

/**
 * Looks for files colleagues shared with the user every `intervalMs`; the first look only learns what is there.
 * A new share makes an activity event (the sharer, never the file's name) and a notification. Returns stop().
 */
export function watchShares(list: () => Promise<{ shareId: string; sharedBy: string }[]>, send: Send, notifier: Notifier, intervalMs: number): () => void {
  let known: Set<string> | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  const look = async () => {
    try {
      const items = await list();
      if (stopped) return;
      if (known) {
        for (const s of items.filter((x) => !known!.has(x.shareId))) {
          send({ type: 'activity', at: Date.now(), folderId: SHARED_WITH_ME, kind: 'shared-with-me', path: null, detail: s.sharedBy });
          notifier.add({ kind: 'shared-with-me', scope: s.sharedBy });
        }
      }
      known = new Set(items.map((x) => x.shareId));
    } catch {
      // the server is away: look again later
    }
    if (!stopped) timer = setTimeout(() => void look(), intervalMs);
  };
  void look();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

/** The folderId of activity that belongs to no synced folder (files shared with the user). */
export const SHARED_WITH_ME = 'shared-with-me';
