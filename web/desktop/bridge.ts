// The renderer's only way out (docs/desktop.md "The renderer"): window.kluis, which the preload exposes
// (desktop/src/electron/preload-api.ts), typed here with the IPC contract. Requests are checked with the channel's
// schema before they leave (the same schema main checks again), so a form shows a mistake without a round trip;
// events are parsed with AppEvent and anything else is dropped.
import { AppEvent, CHANNELS, type Channel, type Request, type Response, type Result } from '../../desktop/src/electron/ipc/contract.js';

interface KluisBridge {
  invoke(channel: string, request?: unknown): Promise<unknown>;
  onEvent(listener: (payload: unknown) => void): () => void;
}

function bridge(): KluisBridge | null {
  const k = (globalThis as { kluis?: KluisBridge }).kluis;
  return k && typeof k.invoke === 'function' ? k : null;
}

export const hasBridge = (): boolean => bridge() !== null;

/** The request as main would parse it, or the first problem (field path and message). */
export function check<C extends Channel>(channel: C, request: Request<C>): { ok: true } | { ok: false; field: string; message: string } {
  const parsed = CHANNELS[channel].request.safeParse(request);
  if (parsed.success) return { ok: true };
  const issue = parsed.error.issues[0];
  return { ok: false, field: issue?.path.map(String).join('.') ?? '', message: issue?.message ?? 'invalid' };
}

/** One request; never throws (a broken bridge answers as an error). */
export async function invoke<C extends Channel>(channel: C, request: Request<C>): Promise<Result<Response<C>>> {
  const k = bridge();
  if (!k) return { ok: false, error: { code: 'no_bridge', message: 'window.kluis is missing' } };
  try {
    const answer = (await k.invoke(channel, request)) as Result<Response<C>>;
    if (answer && typeof answer === 'object' && 'ok' in answer) return answer;
    return { ok: false, error: { code: 'internal', message: 'no answer' } };
  } catch (err) {
    return { ok: false, error: { code: 'internal', message: err instanceof Error ? err.message : String(err) } };
  }
}

/** Main's events, parsed; returns a function that stops listening. */
export function onEvent(listener: (event: AppEvent) => void): () => void {
  const k = bridge();
  if (!k) return () => undefined;
  return k.onEvent((payload) => {
    const parsed = AppEvent.safeParse(payload);
    if (parsed.success) listener(parsed.data);
  });
}
