// Main-process side of the IPC contract (../ipc/contract.ts): one `ipcMain.handle` per channel. Before a handler
// runs, the sender must be the app's own page (app://kluis/, see ./window.ts) and the request must parse with the
// channel's schema; whatever the handler throws becomes `{ok: false, error}` with a stable code and a message that
// is safe to show (KluisError messages are written for users; anything else is logged and answered "internal").
// The handlers are plain async functions of the parsed request: the tests call them through this module with a
// stand-in for ipcMain, and the renderer test bridge forwards to the same functions.
import { KluisError } from '@kluis/shared';
import type * as z from 'zod';
import { CHANNELS, CHANNEL_NAMES, IPC_ERRORS, type Channel, type Response, type Result } from '../ipc/contract.js';
import { isAppUrl } from './window.js';

export type Handler<C extends Channel> = (request: z.infer<(typeof CHANNELS)[C]['request']>) => Promise<Response<C>>;
export type Handlers = { [C in Channel]: Handler<C> };

/** What of Electron's IpcMainInvokeEvent this module reads. */
export interface InvokeEvent {
  senderFrame: { url: string } | null;
}
/** What of Electron's ipcMain this module uses. */
export interface IpcMainLike {
  handle(channel: string, listener: (event: InvokeEvent, ...args: unknown[]) => Promise<unknown>): void;
  removeHandler(channel: string): void;
}

export interface IpcOptions {
  /** Told of unexpected errors (never shown to the renderer); default: console.error of the name and message. */
  onInternalError?: (channel: Channel, err: unknown) => void;
}

/** True when the frame that sent a request is the app's own page. */
export function trustedSender(event: InvokeEvent): boolean {
  const url = event.senderFrame?.url;
  return typeof url === 'string' && isAppUrl(url);
}

/** Runs one request through validation and its handler; the result is never a thrown error. */
export async function dispatch<C extends Channel>(channel: C, raw: unknown, handlers: Partial<Handlers>, options: IpcOptions = {}): Promise<Result<Response<C>>> {
  const spec = CHANNELS[channel];
  const handler = handlers[channel] as Handler<C> | undefined;
  if (!spec || !handler) return { ok: false, error: { code: IPC_ERRORS.unknownChannel, message: `unknown request ${String(channel)}` } };
  const parsed = spec.request.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    return { ok: false, error: { code: IPC_ERRORS.badRequest, message: `${where}${issue?.message ?? 'invalid request'}` } };
  }
  try {
    const value = await handler(parsed.data as Parameters<Handler<C>>[0]);
    return { ok: true, value };
  } catch (err) {
    if (err instanceof KluisError) return { ok: false, error: { code: err.code, message: err.message } };
    (options.onInternalError ?? defaultInternal)(channel, err);
    return { ok: false, error: { code: IPC_ERRORS.internal, message: 'Something went wrong in Kluis. The details are in its log.' } };
  }
}

function defaultInternal(channel: Channel, err: unknown): void {
  const e = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  console.error(`ipc ${channel}: ${e}`);
}

/** Registers every channel of the contract on `ipcMain`; returns a function that removes them again. */
export function registerIpc(ipcMain: IpcMainLike, handlers: Partial<Handlers>, options: IpcOptions = {}): () => void {
  for (const channel of CHANNEL_NAMES) {
    ipcMain.handle(channel, async (event, raw) => {
      if (!trustedSender(event)) return { ok: false, error: { code: IPC_ERRORS.forbiddenSender, message: 'request from a page that is not Kluis' } };
      return dispatch(channel, raw, handlers, options);
    });
  }
  return () => {
    for (const channel of CHANNEL_NAMES) ipcMain.removeHandler(channel);
  };
}
