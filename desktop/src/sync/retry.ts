// Waiting between tries: transient errors (server or object store away, network) are retried with a backoff that
// doubles from 1 s to 30 s and starts again at 1 s after a success.

/** Resolves after `ms`, or at once when `signal` aborts. */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> => new Promise((resolve) => {
  if (signal?.aborted) return resolve();
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => {
    clearTimeout(t);
    resolve();
  }, { once: true });
});

/** The wait before the next try: 1 s, 2 s, 4 s ... 30 s; `reset` after a success. */
export class Backoff {
  private ms = 1000;

  /** The wait to use now (the next one doubles). */
  next(): number {
    const ms = this.ms;
    this.ms = Math.min(this.ms * 2, 30_000);
    return ms;
  }

  /** The wait the next failure will use. */
  get current(): number {
    return this.ms;
  }

  reset(): void {
    this.ms = 1000;
  }
}
