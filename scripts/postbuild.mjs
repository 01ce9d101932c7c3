// After tsc: make the npm bins executable (tsc writes 0644; npm links bins before the first build exists).
import { chmodSync, existsSync } from 'node:fs';
for (const bin of ['server/dist/admin/cli.js', 'desktop/dist/cli/main.js']) {
  if (existsSync(bin)) chmodSync(bin, 0o755);
}
