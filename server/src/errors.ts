// ApiError flows through one middleware into `{ error: { code, message } }` with its HTTP status.
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { ErrorCode } from '@kluis/shared';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Turns every thrown error into the JSON error shape; unknown errors become a logged 500 without details. */
export function errorMiddleware(log: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new ApiError(404, ErrorCode.NotFound, 'no such endpoint');
    } catch (err) {
      const e = err as { status?: number; expose?: boolean; message?: string; type?: string };
      let status = 500;
      let code: ErrorCode = ErrorCode.Internal;
      let message = 'internal error';
      if (err instanceof ApiError) {
        ({ status, code, message } = err);
      } else if (typeof e.status === 'number' && e.status >= 400 && e.status < 500 && e.expose) {
        // Errors raised by Koa and its body parser (malformed JSON, body too large, ...).
        status = e.status;
        code = status === 413 ? ErrorCode.PayloadTooLarge : ErrorCode.BadRequest;
        message = e.message ?? 'bad request';
      } else {
        log.error({ err, method: ctx.method, path: ctx.path }, 'unhandled error');
      }
      ctx.status = status;
      ctx.body = { error: { code, message } };
    }
  };
}
