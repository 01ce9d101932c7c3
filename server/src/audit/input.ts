// Validation and normalisation of what is appended to the audit trail (docs/architecture.md §7): an entry the log
// refuses is a programming error of the caller; request facts supplied by clients are cleaned rather than refused, so
// that an odd header never loses an entry.
import { canonicalJson, type CanonicalValue } from '@kluis/shared';
import type { AuditEntryInput, AuditOutcome } from './types.js';
import type { AuditChainEntry } from './rows.js';

/** Thrown for an entry or filter the audit log refuses (a programming error of the caller: answer 500). */
export class AuditInputError extends Error {
  override name = 'AuditInputError';
}

/** Longest canonical JSON text of `details` (characters). */
export const AUDIT_DETAILS_MAX = 8192;

const ACTION_RE = /^[a-z][a-z0-9_.-]{1,63}$/;
export const OUTCOMES: ReadonlySet<string> = new Set<AuditOutcome>(['success', 'denied', 'failed']);
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/** Identifiers chosen by the server: longer values are refused (never silently truncated). */
const ID_LIMITS = { orgId: 32, actorUserId: 32, actorDeviceId: 32, targetType: 32, targetId: 128 } as const;
/** Request facts supplied by the client: cleaned and truncated, so that an odd header never loses an entry. */
const TEXT_LIMITS = { ip: 64, userAgent: 300, client: 100 } as const;

export function toInt(value: number | string, what: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new AuditInputError(`${what} is not an integer`);
  return n;
}

function checkId(name: keyof typeof ID_LIMITS, value: string | null | undefined): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new AuditInputError(`audit ${name}: must be a string or null`);
  if (value.length > ID_LIMITS[name]) throw new AuditInputError(`audit ${name}: longer than ${ID_LIMITS[name]} characters`);
  if (LONE_SURROGATE.test(value) || value.includes('\u0000')) {
    throw new AuditInputError(`audit ${name}: contains a NUL or a lone surrogate`);
  }
  return value;
}

/** Replaces NUL and lone surrogates (unstorable, not canonical-JSON encodable) and truncates to `max` code points. */
function cleanText(value: string | null | undefined, max: number, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new AuditInputError(`audit ${name}: must be a string or null`);
  let s = value.replace(LONE_SURROGATES, '\uFFFD');
  if (s.includes('\u0000')) s = s.replaceAll('\u0000', '\uFFFD');
  if (s.length > max) {
    const points = Array.from(s);
    if (points.length > max) s = points.slice(0, max).join('');
  }
  return s;
}

/**
 * A target id taken from the request (a path parameter, a query) made storable, for the audit of a refused request
 * (the id itself is client-chosen, so the refusal must not be lost to the id limits above): NUL and lone surrogates
 * become U+FFFD, and an id over 128 characters keeps its first 127 followed by "…". `details` says what was done
 * (targetIdCleaned: true; targetIdLength: the original length), or is null when the id is stored unchanged.
 */
export function auditSafeTargetId(value: string | null | undefined): { id: string | null; details: { [key: string]: CanonicalValue } | null } {
  if (value === undefined || value === null) return { id: null, details: null };
  const max = ID_LIMITS.targetId;
  let s = String(value);
  const details: { [key: string]: CanonicalValue } = {};
  if (LONE_SURROGATE.test(s) || s.includes('\u0000')) {
    s = s.replace(LONE_SURROGATES, '\uFFFD').replaceAll('\u0000', '\uFFFD');
    details.targetIdCleaned = true;
  }
  if (s.length > max) {
    let cut = max - 1;
    if (/[\uD800-\uDBFF]/.test(s[cut - 1]!)) cut--; // never split a surrogate pair
    s = `${s.slice(0, cut)}\u2026`;
    details.targetIdLength = value.length;
  }
  return { id: s, details: Object.keys(details).length ? details : null };
}

function checkDetails(details: AuditEntryInput['details']): { value: { [key: string]: CanonicalValue } | null; text: string | null } {
  if (details === undefined || details === null) return { value: null, text: null };
  if (typeof details !== 'object' || Array.isArray(details)) throw new AuditInputError('audit details: must be a plain object or null');
  let text: string;
  try {
    text = canonicalJson(details);
  } catch (err) {
    throw new AuditInputError(`audit details: ${(err as Error).message}`);
  }
  if (text.length > AUDIT_DETAILS_MAX) throw new AuditInputError(`audit details: longer than ${AUDIT_DETAILS_MAX} characters as JSON`);
  // Hash what will be read back: a fresh copy, so a caller mutating its object later changes nothing.
  return { value: JSON.parse(text) as { [key: string]: CanonicalValue }, text };
}

/** Validates and normalises an entry; throws AuditInputError. */
export function normaliseAuditInput(entry: AuditEntryInput): Omit<AuditChainEntry, 'seq' | 'ts'> & { detailsText: string | null } {
  if (entry === null || typeof entry !== 'object') throw new AuditInputError('audit entry: must be an object');
  if (typeof entry.action !== 'string' || !ACTION_RE.test(entry.action)) {
    throw new AuditInputError(`audit action ${JSON.stringify(entry.action)}: must match ${ACTION_RE.source}`);
  }
  if (typeof entry.outcome !== 'string' || !OUTCOMES.has(entry.outcome)) {
    throw new AuditInputError(`audit outcome ${JSON.stringify(entry.outcome)}: must be success, denied or failed`);
  }
  if (entry.orgId === undefined) throw new AuditInputError('audit orgId: required (null for system-wide events)');
  const details = checkDetails(entry.details);
  return {
    orgId: checkId('orgId', entry.orgId),
    actorUserId: checkId('actorUserId', entry.actorUserId),
    actorDeviceId: checkId('actorDeviceId', entry.actorDeviceId),
    action: entry.action,
    targetType: checkId('targetType', entry.targetType),
    targetId: checkId('targetId', entry.targetId),
    outcome: entry.outcome,
    ip: cleanText(entry.ip, TEXT_LIMITS.ip, 'ip'),
    userAgent: cleanText(entry.userAgent, TEXT_LIMITS.userAgent, 'userAgent'),
    client: cleanText(entry.client, TEXT_LIMITS.client, 'client'),
    details: details.value,
    detailsText: details.text,
  };
}
