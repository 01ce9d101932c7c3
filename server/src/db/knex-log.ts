// Knex's own warnings ("Acquire connection error", deprecations) go to standard error. Its default logger writes them
// with console.log, on standard output, where they broke the one JSON line of `kluis-admin --json`.
import { format } from 'node:util';
import type { Knex } from 'knex';

const toStderr = (message: unknown): void => void process.stderr.write(`knex: ${typeof message === 'string' ? message : format(message)}\n`);

export const knexLog: Knex.Logger = { warn: toStderr, error: toStderr, deprecate: toStderr, debug: toStderr };
