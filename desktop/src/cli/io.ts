// What the `kluis` CLI reads and writes: secrets from standard input (never argv), one JSON document or human text
// on stdout, and on failure exactly one line `kluis: <reason>` on stderr with exit code 1 (runtime, network) or 2
// (usage, validation, refusal). Also used by the sync commands (desktop/src/cli/sync-commands.ts).
import type { Command } from 'commander';
import { CommanderError } from 'commander';
import { ErrorCode, KluisError } from '@kluis/shared';
import { ApiRequestError, NetworkError } from '../api/client.js';
import { ProtocolError } from '../api/endpoints.js';
import { UsageError } from '../account/auth.js';
import { StateError } from '../account/state.js';

/** Codes the CLI adds to the protocol's ErrorCode values in its JSON errors (docs/cli.md). */
export const CliCode = {
  Usage: 'usage',
  NotLoggedIn: 'not_logged_in',
  InsecureState: 'insecure_state',
  CorruptState: 'corrupt_state',
  Network: 'network',
} as const;

/** A failure with its exit code and JSON code, raised by commands. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: 1 | 2 | 3 = 2,
    readonly code: string = CliCode.Usage,
    /** Extra top-level members of the --json error document (e.g. the wipe report). */
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** Whether --json is in effect for this command (a global option). */
export function isJson(cmd: Command): boolean {
  return Boolean(cmd.optsWithGlobals().json);
}

/** Text from the server or other users, made safe for one terminal line (no escapes, no newlines). */
export function safeText(text: string, max = 300): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/** Prints the command's result: `value` as one JSON line with --json, otherwise the human text. */
export function emit(cmd: Command, human: string | (() => string), value: unknown): void {
  if (isJson(cmd)) process.stdout.write(`${JSON.stringify(value)}\n`);
  else process.stdout.write(`${typeof human === 'function' ? human() : human}\n`);
}

/** A fixed-width table of already safe cells. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const MAX_STDIN = 64 * 1024;

/**
 * Reads `count` lines from standard input (without their line ends; "\r\n" accepted). Stops reading as soon as it
 * has them, so a terminal is not held open. Fewer lines at end of input: the caller decides.
 */
export async function readStdinLines(count: number): Promise<string[]> {
  const stdin = process.stdin;
  return new Promise<string[]>((resolve, reject) => {
    let text = '';
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onError);
      stdin.pause();
      stdin.destroy();
      if (err) {
        reject(err);
        return;
      }
      const parts = text.split('\n');
      text = '';
      // More parts than wanted: the first `count` are complete lines. Otherwise input ended: a last part without
      // a line end still counts as a line, an empty one does not.
      const lines = parts.length > count ? parts.slice(0, count) : parts[parts.length - 1] === '' ? parts.slice(0, -1) : parts;
      resolve(lines.map((l) => l.replace(/\r$/, '')));
    };
    const onData = (chunk: string) => {
      text += chunk;
      if (text.length > MAX_STDIN) finish(new CliError('standard input is too long for a password'));
      else if (text.split('\n').length > count) finish();
    };
    const onEnd = () => finish();
    const onError = (err: Error) => finish(new CliError(`cannot read standard input: ${err.message}`, 1));
    stdin.setEncoding('utf8');
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.on('error', onError);
    stdin.resume();
  });
}

/** Says how to pass a secret when a command that needs one lacks its --…-stdin flag. */
export function stdinFlagMissing(command: string, flag: string, what: string): CliError {
  const how = `pipe it in and pass ${flag}, e.g. printf '%s\\n' "$PASSWORD" | kluis ${command} ... ${flag}`;
  return process.stdin.isTTY
    ? new CliError(`kluis ${command} reads the ${what} from standard input, never from the command line, and does not prompt (stdin is a terminal): ${how}`)
    : new CliError(`kluis ${command} needs ${flag}: the ${what} is read from the first line of standard input, never from the command line`);
}

export interface DescribedError {
  code: string;
  message: string;
  exitCode: 1 | 2 | 3;
}

function apiMessage(err: ApiRequestError, command: string): string {
  const msg = safeText(err.message);
  switch (err.code) {
    case ErrorCode.Unauthenticated:
      return ['login', 'signup'].includes(command) ? msg : `the session is no longer valid (${msg}): log in again (kluis logout; kluis login ...)`;
    case ErrorCode.Forbidden:
      return `not allowed: ${msg}`;
    case ErrorCode.RateLimited:
      return msg;
    case ErrorCode.ValidationFailed:
    case ErrorCode.BadRequest:
      return `the server refused the request: ${msg}`;
    case ErrorCode.Internal:
      return `server error (HTTP ${err.status}): ${msg}`;
    case ErrorCode.Unavailable:
      return `the server is not ready: ${msg}`;
    default:
      return msg;
  }
}

/** Commander's message; an "unknown option" that is an id (older ids may begin with `-`) says how to pass it. */
function commanderMessage(err: CommanderError): string {
  const message = err.message.replace(/^error: /, '');
  const id = /^unknown option '(-[A-Za-z0-9_-]{21})'$/.exec(message);
  return id ? `${message}; an id that begins with '-' goes after '--', for example: kluis share revoke -- ${id[1]}` : message;
}

/** Maps any failure to its JSON code, one-line message and exit code. */
export function describeError(err: unknown, command = ''): DescribedError {
  if (err instanceof CliError) return { code: err.code, message: err.message, exitCode: err.exitCode };
  if (err instanceof CommanderError) return { code: CliCode.Usage, message: commanderMessage(err), exitCode: 2 };
  if (err instanceof UsageError) return { code: CliCode.Usage, message: err.message, exitCode: 2 };
  if (err instanceof StateError) {
    const code = err.kind === 'not_logged_in' ? CliCode.NotLoggedIn : err.kind === 'insecure' ? CliCode.InsecureState : CliCode.CorruptState;
    return { code, message: err.message, exitCode: 2 };
  }
  if (err instanceof NetworkError) {
    const m = /^cannot reach (.*)$/s.exec(err.message);
    return { code: CliCode.Network, message: m ? `cannot reach server ${m[1]}` : `cannot reach server: ${err.message}`, exitCode: 1 };
  }
  if (err instanceof ApiRequestError) {
    const runtime = err.status >= 500 || err.status === 429;
    return { code: err.code, message: apiMessage(err, command), exitCode: runtime ? 1 : 2 };
  }
  if (err instanceof ProtocolError) return { code: err.code, message: safeText(err.message), exitCode: 1 };
  if (err instanceof KluisError) return { code: err.code, message: safeText(err.message), exitCode: 2 };
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && typeof e.syscall === 'string') return { code: 'io_error', message: `${e.syscall} failed: ${e.message}`, exitCode: 1 };
  return { code: ErrorCode.Internal, message: `internal error: ${(err as Error)?.message ?? String(err)}`, exitCode: 1 };
}

/** Reports a failure: the JSON error on stdout with --json, and always one line on stderr. */
export function reportError(err: unknown, json: boolean, command = ''): 1 | 2 | 3 {
  const d = describeError(err, command);
  const line = d.message.replace(/\s*\n\s*/g, ' ');
  if (json) process.stdout.write(`${JSON.stringify({ error: { code: d.code, message: line }, ...(err instanceof CliError ? err.extra : undefined) })}\n`);
  process.stderr.write(`kluis: ${line}\n`);
  return d.exitCode;
}
