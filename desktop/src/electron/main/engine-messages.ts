// The messages between the main thread's folder proxy (./engine-proxy.ts) and a folder's engine thread
// (./engine-worker.ts): method calls and their answers, the door's events, the end of the watch. Both sides run in
// the one main process (worker_threads), so the account's keys go to the worker by postMessage (a structured clone
// in memory, never a file or a socket; docs/desktop.md "Main process"). Errors cross as plain objects that keep their
// code, message and HTTP status, and are made back into KluisError / ApiRequestError on the main side.
import { ErrorCode, KluisError } from '@kluis/shared';
import type { Account } from '../../account/state.js';
import { ApiRequestError } from '../../api/client.js';
import type { OpenOptions, SyncFolderEvents } from '../../sync/door.js';
import type { FolderRecord } from '../../sync/index-db.js';

/** What a folder's thread is started with (workerData). */
export interface WorkerStart {
  account: Account;
  dir: string;
  open: OpenOptions;
}

/** The proxy's calls: the SyncFolder methods that main uses, each answered once. */
export interface Calls {
  start: [{ pollMs?: number }];
  pause: [];
  resume: [];
  setBandwidth: [number];
  history: [string];
  restore: [string, string];
  close: [];
}

export type CallName = keyof Calls;

export interface WireError {
  name: string;
  message: string;
  code?: string;
  status?: number;
  body?: Record<string, unknown>;
}

export type ToWorker = { type: 'call'; id: number; method: CallName; args: unknown[] };

export type FromWorker =
  | { type: 'opened'; folder: FolderRecord }
  | { type: 'open-failed'; error: WireError }
  | { type: 'answer'; id: number; value?: unknown; error?: WireError }
  | { type: 'event'; event: keyof SyncFolderEvents; args: unknown[] }
  /** the watch started by `start` ended (stopped, or failed with `error`) */
  | { type: 'ended'; error?: WireError };

export function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const e = err as Error & { code?: unknown; status?: unknown; body?: unknown };
  return {
    name: e.name, message: e.message,
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.status === 'number' ? { status: e.status } : {}),
    ...(e.body && typeof e.body === 'object' ? { body: e.body as Record<string, unknown> } : {}),
  };
}

/** The error as main's code expects it: an ApiRequestError with its status (a 401 ends the session), a KluisError with its code. */
export function fromWire(w: WireError): Error {
  let err: Error;
  if (w.status !== undefined && w.code !== undefined) err = new ApiRequestError(w.status, w.code as ErrorCode, w.message, w.body ?? {});
  else if (w.code !== undefined && (Object.values(ErrorCode) as string[]).includes(w.code)) err = new KluisError(w.code as ErrorCode, w.message);
  else {
    err = Object.assign(new Error(w.message), w.code !== undefined ? { code: w.code } : {});
    err.name = w.name;
  }
  return err;
}
