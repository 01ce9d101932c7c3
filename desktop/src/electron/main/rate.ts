// A folder's transfer rate and time left for the live progress of the tray and the renderer (docs/desktop.md "IPC"):
// the engine reports how many bytes of the pass are done; main keeps the last few seconds of those reports and
// answers the bytes per second over them. A sliding window rather than the last two reports: the engine reports per
// piece read, bursts of small files come in the same millisecond, and a rate from two reports jumps by orders of
// magnitude. The window ends now, not at the last report, so a transfer that stalls shows its rate falling.
// Only reports that moved bytes are samples, and the first of a phase is where the window may start: the time before
// it (the scan, reading and sealing the first batch, a loaded machine's wait for a core) moved nothing that the
// rate could divide, and counting it showed a fraction of the real speed (152 KB/s at a 1 MiB/s limit, load 8).
// The engine's upload reports bytes when a batch is sent (upload.ts), so samples come in steps of up to 2 MiB.

interface Sample {
  at: number;
  bytes: number;
}

/** Reports closer together than this replace the newest sample: the window holds about 50 samples, not thousands. */
const SPACING_MS = 100;

export class Throughput {
  private samples: Sample[] = [];
  private phase: string | null = null;

  /**
   * @param windowMs how far back the rate looks
   * @param minSpanMs no rate until the reports span this long (a first burst says nothing about the speed)
   */
  constructor(private readonly windowMs = 5000, private readonly minSpanMs = 1000) {}

  /**
   * A progress report: `bytesDone` of the pass in `phase`. A new phase, or fewer bytes done (a new pass), starts over;
   * a report that moved nothing (none yet, or as many as the last) is no sample.
   */
  add(phase: string, bytesDone: number, now = Date.now()): void {
    const n = this.samples.length;
    if (phase !== this.phase || (n > 0 && bytesDone < this.samples[n - 1]!.bytes)) this.samples = [];
    this.phase = phase;
    const s = this.samples;
    if (bytesDone === 0 || (s.length > 0 && bytesDone === s[s.length - 1]!.bytes)) return;
    if (s.length >= 2 && now - s[s.length - 2]!.at < SPACING_MS) s[s.length - 1] = { at: now, bytes: bytesDone };
    else s.push({ at: now, bytes: bytesDone });
    // keep one sample older than the window: the count the window starts from
    while (s.length > 2 && s[1]!.at < now - this.windowMs) s.shift();
  }

  /** Forgets everything (the pass ended, the folder paused). */
  reset(): void {
    this.samples = [];
    this.phase = null;
  }

  /**
   * Bytes per second over the window ending now (from the last sample before it, or the first within it); null while
   * too little is known. When the newest report is older than the window, nothing moved in it: 0.
   */
  rate(now = Date.now()): number | null {
    const s = this.samples;
    const last = s[s.length - 1];
    if (!last) return null;
    const from = now - this.windowMs;
    if (last.at < from) return 0;
    let i = 0;
    while (i + 1 < s.length && s[i + 1]!.at < from) i++;
    const first = s[i]!;
    // one report in the window says how much is done, not how fast
    if (first === last) return null;
    const span = now - first.at;
    if (span < this.minSpanMs) return null;
    return Math.round(((last.bytes - first.bytes) * 1000) / span);
  }

  /** Seconds until `pendingBytes` are moved at the current rate; null when the rate is unknown or nothing moves. */
  eta(pendingBytes: number, now = Date.now()): number | null {
    const r = this.rate(now);
    if (r === null || r <= 0) return null;
    return Math.ceil(pendingBytes / r);
  }
}
