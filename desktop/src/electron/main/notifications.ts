// Native notifications of the desktop app (docs/desktop.md "Notifications"): conflicts, files shared with the user,
// refusals and errors, coalesced so that a pass with 500 conflicts or a burst of shares makes one notification per
// kind and space, not 500. What a notification names: the user's own spaces and counts, the colleague who shared
// (never the name of a file someone else shared: a notification can show on a locked screen), and for the user's own
// files at most one path. Electron's Notification is passed in (tests record what they are asked to show).
import type * as Electron from 'electron';

export type NotificationLike = Pick<typeof Electron.Notification, 'isSupported'> & (new (options: { title: string; body: string; silent?: boolean }) => { show(): void });

export type NoticeKind = 'conflict' | 'shared-with-me' | 'refused' | 'error' | 'wiped' | 'keys';

export interface Notice {
  kind: NoticeKind;
  /** the space (or, for shares, the colleague) the notice is about: notices of one kind and scope are merged */
  scope: string;
  /** one path of the user's own folder, shown when the group holds one notice only */
  path?: string | null;
  /** a sentence for a single notice (errors, wipes) */
  detail?: string | null;
}

export interface NotifierOptions {
  /** how long notices gather before they are shown (default 2 s) */
  windowMs?: number;
  /** whether notifications are wanted (the setting); read at each flush */
  enabled?: () => boolean;
}

const TITLES: Record<NoticeKind, string> = {
  'conflict': 'Kluis: conflict',
  'shared-with-me': 'Kluis: shared with you',
  'refused': 'Kluis: refused',
  'error': 'Kluis: sync error',
  'wiped': 'Kluis: this device was wiped',
  'keys': 'Kluis: keys stored without the system keychain',
};

/** The text of one group of notices of the same kind and scope. */
export function noticeText(group: readonly Notice[]): { title: string; body: string } {
  const first = group[0]!;
  const n = group.length;
  const one = n === 1;
  const where = first.scope;
  switch (first.kind) {
    case 'conflict':
      return { title: TITLES.conflict, body: one && first.path ? `${first.path} in ${where} was changed on two devices; both copies are kept.` : `${n} files in ${where} were changed on two devices; both copies are kept.` };
    case 'shared-with-me':
      return { title: TITLES['shared-with-me'], body: one ? `${where} shared a file with you.` : `${where} shared ${n} files with you.` };
    case 'refused':
      return { title: TITLES.refused, body: one && first.path ? `${first.path} in ${where} was refused: ${first.detail ?? 'see the activity list'}.` : `${n} files in ${where} were refused; see the activity list.` };
    case 'error':
      return { title: TITLES.error, body: one ? `${where}: ${first.detail ?? 'an error stopped syncing'}` : `${where}: ${n} errors; see the activity list.` };
    case 'wiped':
    case 'keys':
      return { title: TITLES[first.kind], body: first.detail ?? '' };
  }
}

/** Gathers notices for a short window and shows one notification per kind and scope. */
export class Notifier {
  private pending: Notice[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly windowMs: number;

  constructor(private readonly Notification: NotificationLike | null, private readonly o: NotifierOptions = {}) {
    this.windowMs = o.windowMs ?? 2000;
  }

  add(notice: Notice): void {
    this.pending.push(notice);
    this.timer ??= setTimeout(() => this.flush(), this.windowMs);
  }

  /** Shows what gathered (also called at quit); returns what it showed. */
  flush(): { title: string; body: string }[] {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const notices = this.pending;
    this.pending = [];
    if (notices.length === 0 || (this.o.enabled && !this.o.enabled())) return [];
    const groups = new Map<string, Notice[]>();
    for (const n of notices) {
      const key = `${n.kind}\u0000${n.scope}`;
      groups.set(key, [...(groups.get(key) ?? []), n]);
    }
    const shown = [...groups.values()].map(noticeText);
    if (this.Notification?.isSupported()) for (const s of shown) new this.Notification({ ...s, silent: false }).show();
    return shown;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = [];
  }
}
