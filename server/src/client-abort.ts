// A client that hangs up in the middle of its request body (an upload cut off: a closed laptop lid, a lost network)
// makes the route's read of the body fail with ECONNRESET. That code also means "the object store reset the
// connection", so without this check a cut-off upload was logged and audited as "blob store unavailable" (503).
// Node marks the client's case precisely: its HTTP server destroys the request with an ECONNRESET whose message is
// "aborted" (abortIncoming) when the connection closes before the body is complete.
import type { IncomingMessage } from 'node:http';

/** 499, nginx's "client closed request": never sent (the socket is gone), recorded in metrics and the audit trail. */
export const CLIENT_CLOSED_REQUEST = 499;

const cutOff = new WeakSet<IncomingMessage>();

function isPeerAbort(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return !!e && e.code === 'ECONNRESET' && e.message === 'aborted';
}

/**
 * Remembers when `req`'s connection drops before its body is complete. The route may see another error first (the
 * store's, once its source stream failed), so the request's own error is recorded as it happens.
 */
export function watchClientAbort(req: IncomingMessage): void {
  req.on('error', (err) => {
    if (isPeerAbort(err)) cutOff.add(req);
  });
}

/** Whether the request failed because the client closed the connection before sending its whole body. */
export function clientAborted(req: IncomingMessage, err: unknown): boolean {
  if (req.complete) return false;
  if (cutOff.has(req)) return true;
  let e = err as { cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (isPeerAbort(e)) return true;
    e = e.cause as typeof e;
  }
  return false;
}
