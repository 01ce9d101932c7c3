// Names of the copies the engine makes beside a file (docs/architecture.md §4): conflict copies, `name (conflict
// <device> <YYYY-MM-DD HHmm>).ext`, made by reconcile.ts, and renamed file-request uploads, `name (upload <YYYY-MM-DD
// HHmm>).ext` (pull.ts); the desktop app's conflict list and the export use the same forms.

const encoder = new TextEncoder();
const MAX_NAME_BYTES = 255;

/** A device name made safe as part of a file name: letters, digits, space, dot, dash, underscore; at most 32. */
export function sanitizeDeviceName(device: string): string {
  const cleaned = [...device.normalize('NFC').replace(/[^\p{L}\p{N} ._-]+/gu, '-').replace(/\s+/g, ' ').replace(/-{2,}/g, '-')]
    .slice(0, 32)
    .join('')
    .replace(/^[\s.-]+|[\s.-]+$/g, '');
  return cleaned === '' ? 'device' : cleaned;
}

function two(n: number): string {
  return String(n).padStart(2, '0');
}

/** `YYYY-MM-DD HHmm` in UTC: conflict copies made on different machines (and time zones) sort the same way. */
export function conflictStamp(date: Date): string {
  return `${date.getUTCFullYear()}-${two(date.getUTCMonth() + 1)}-${two(date.getUTCDate())} ${two(date.getUTCHours())}${two(date.getUTCMinutes())}`;
}

/**
 * The conflict copy's path for `relPath` (docs/architecture.md §4): `name (conflict <device> <YYYY-MM-DD HHmm>).ext`, in the same
 * folder. The extension is the last `.xxx` of the name (none for `.bashrc` or `Makefile`); the time is UTC; if
 * `exists` says the name is taken, ` 2`, ` 3`... is added inside the parentheses. The stem is shortened when the
 * name would exceed 255 bytes.
 */
export function conflictName(relPath: string, device: string, date: Date, exists: (path: string) => boolean = () => false): string {
  return taggedName(relPath, `conflict ${sanitizeDeviceName(device)} ${conflictStamp(date)}`, exists);
}

/**
 * `name (<tag>).ext` beside `relPath`, with ` 2`, ` 3`... inside the parentheses while `exists` says the name is taken;
 * conflict copies and renamed file-request uploads (`name (upload <YYYY-MM-DD HHmm>).ext`, sync/pull.ts).
 */
export function taggedName(relPath: string, tag: string, exists: (path: string) => boolean = () => false): string {
  const slash = relPath.lastIndexOf('/');
  const dir = relPath.slice(0, slash + 1);
  const name = relPath.slice(slash + 1);
  const dot = name.lastIndexOf('.');
  const hasExt = dot > 0 && dot < name.length - 1;
  const stem = hasExt ? name.slice(0, dot) : name;
  const ext = hasExt ? name.slice(dot) : '';
  for (let n = 1; ; n++) {
    const marker = ` (${tag}${n === 1 ? '' : ` ${n}`})`;
    let s = [...stem];
    while (s.length > 0 && encoder.encode(s.join('') + marker + ext).length > MAX_NAME_BYTES) s = s.slice(0, -1);
    const candidate = dir + s.join('') + marker + ext;
    if (!exists(candidate)) return candidate;
  }
}
