// Reads a real /api/v1/events stream for integration tests: collects its text and notices when the server ends it.
export interface EventStream {
  status: number;
  /** Everything received so far. */
  text(): string;
  /** Resolves true once `pattern` appears in the stream, false after `ms` without it. */
  waitFor(pattern: RegExp, ms?: number): Promise<boolean>;
  /** Resolves true once the server ended the stream, false if it is still open after `ms`. */
  waitEnd(ms?: number): Promise<boolean>;
  ended(): boolean;
  /** Aborts our side (for streams the test leaves open). */
  close(): void;
}

export async function openEvents(base: string, token: string): Promise<EventStream> {
  const controller = new AbortController();
  const res = await fetch(`${base}/api/v1/events`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  let text = '';
  let ended = false;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const decoder = new TextDecoder();
  void (async () => {
    try {
      if (!res.body) return;
      const reader = res.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += decoder.decode(value, { stream: true });
        wake();
      }
    } catch {
      // aborted by close(), or the connection broke: either way the stream is over
    } finally {
      ended = true;
      wake();
    }
  })();
  const until = (ok: () => boolean, ms: number) => new Promise<boolean>((resolve) => {
    if (ok()) return resolve(true);
    const check = () => {
      if (!ok() && !ended) return;
      clearTimeout(timer);
      waiters.delete(check);
      resolve(ok());
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      resolve(ok());
    }, ms);
    waiters.add(check);
  });
  return {
    status: res.status,
    text: () => text,
    waitFor: (pattern, ms = 5000) => until(() => pattern.test(text), ms),
    waitEnd: (ms = 3000) => until(() => ended, ms),
    ended: () => ended,
    close: () => controller.abort(),
  };
}
