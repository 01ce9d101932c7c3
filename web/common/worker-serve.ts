// The workers' side of worker-pool.ts (a file of its own: it is checked with the worker's types, not the page's).

/**
 * The worker side: loads libsodium, answers pings, and runs `job` for every other message; `job` answers the reply's
 * fields and the buffers to transfer back, or throws (the page gets `error: 'failed'`).
 */
export function serveJobs<J>(init: () => Promise<void>, job: (message: J) => [Record<string, unknown>, Transferable[]]): void {
  // (A worker's global scope, typed here so that this file also checks with the page's DOM types.)
  const scope = globalThis as unknown as { onmessage: (e: MessageEvent<J & { n: number; ping?: true }>) => void; postMessage(m: unknown, transfer?: Transferable[]): void };
  const ready = init();
  scope.onmessage = async (e: MessageEvent<J & { n: number; ping?: true }>) => {
    const n = e.data.n;
    try {
      await ready;
    } catch {
      scope.postMessage({ n, error: 'init' });
      return;
    }
    if (e.data.ping) {
      scope.postMessage({ n, pong: true });
      return;
    }
    let answer: [Record<string, unknown>, Transferable[]];
    try {
      answer = job(e.data);
    } catch {
      scope.postMessage({ n, error: 'failed' });
      return;
    }
    scope.postMessage({ ...answer[0], n }, answer[1]);
  };
}
