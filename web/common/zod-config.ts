// Imported first by each page's main.ts (web/desktop, web/admin), before any schema is made: zod compiles object parsers with `new Function` unless
// told not to, and decides so when each schema is constructed. The app's CSP (script-src 'self', no 'unsafe-eval')
// refuses that, and even zod's probe for it is reported as a violation.
import * as z from 'zod';

z.config({ jitless: true });
