// Imported first by the CLI (./main.ts), before any schema is built: a `kluis` process is short and parses each of
// its schemas a few times, so zod's parser compilation (a `new Function` per object schema, on its first parse) costs
// more than it saves: about 50 ms of a no-op `kluis sync --once` (issue 22). Zod reads this switch when a schema is
// made, hence the import order. The desktop app's long-lived process keeps the compiled parsers.
import { config } from 'zod';

config({ jitless: true });
