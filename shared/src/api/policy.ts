// Sharing policy by a space's classification (docs/api.md "Policy"): what each class allows, with documented
// defaults an organisation's admins may change. The server enforces it; clients read it to explain a refusal
// before they ask. One module for the server, the CLI and the pages.
import * as z from 'zod';

/** Classes from least to most sensitive. A space's class may be raised by a manager, never lowered. */
export const CLASS_ORDER = ['public', 'internal', 'confidential', 'personal', 'social-personal', 'medical'] as const;
export type ClassName = (typeof CLASS_ORDER)[number];

export const ClassPolicy = z.object({
  /** Whether share links may be made of files in spaces of this class. */
  linksAllowed: z.boolean(),
  /** Longest life of a link, in days (1..90). */
  maxLinkDays: z.number().int().min(1).max(90),
  /** Whether every link needs a password. */
  passwordRequired: z.boolean(),
  /** Highest download count a link may allow; null: links may be unlimited. */
  maxDownloads: z.number().int().min(1).max(10_000).nullable(),
  /** Whether people of another organisation on this server may be members of such spaces or receive their files. */
  externalMembers: z.boolean(),
}).strict();
export type ClassPolicy = z.infer<typeof ClassPolicy>;

/**
 * The defaults (docs/api.md "Policy"): the more sensitive the class, the shorter, fewer and better protected the
 * links; medical data is never shared by link. Personal data classes require a password, as the Belgian social
 * security rules ask that every disclosure be limited to who needs it.
 */
export const DEFAULT_CLASS_POLICY: Readonly<Record<ClassName, ClassPolicy>> = {
  public: { linksAllowed: true, maxLinkDays: 90, passwordRequired: false, maxDownloads: null, externalMembers: true },
  internal: { linksAllowed: true, maxLinkDays: 30, passwordRequired: false, maxDownloads: null, externalMembers: false },
  confidential: { linksAllowed: true, maxLinkDays: 14, passwordRequired: true, maxDownloads: 50, externalMembers: false },
  personal: { linksAllowed: true, maxLinkDays: 7, passwordRequired: true, maxDownloads: 10, externalMembers: false },
  'social-personal': { linksAllowed: true, maxLinkDays: 7, passwordRequired: true, maxDownloads: 5, externalMembers: false },
  medical: { linksAllowed: false, maxLinkDays: 1, passwordRequired: true, maxDownloads: 1, externalMembers: false },
};

/** Whether `to` is the same class as `from` or a more sensitive one. */
export function classAtLeast(to: ClassName, from: ClassName): boolean {
  return CLASS_ORDER.indexOf(to) >= CLASS_ORDER.indexOf(from);
}

/** What a link would ask of the policy. */
export interface LinkAsk {
  expiresAt: number;
  password: boolean;
  maxDownloads: number | null;
}

/** Why `policy` refuses the link, in words a user can act on; null when it allows it. */
export function linkPolicyProblem(className: ClassName, policy: ClassPolicy, ask: LinkAsk, now = Date.now()): string | null {
  if (!policy.linksAllowed) return `links are not allowed for ${className} spaces`;
  const days = (ask.expiresAt - now) / 86_400_000;
  if (days > policy.maxLinkDays + 1 / 1440) return `links of ${className} spaces expire within ${policy.maxLinkDays} day${policy.maxLinkDays === 1 ? '' : 's'}`;
  if (policy.passwordRequired && !ask.password) return `links of ${className} spaces need a password`;
  if (policy.maxDownloads !== null && (ask.maxDownloads === null || ask.maxDownloads > policy.maxDownloads)) {
    return `links of ${className} spaces allow at most ${policy.maxDownloads} download${policy.maxDownloads === 1 ? '' : 's'}`;
  }
  return null;
}

/** GET /api/v1/orgs/:orgId/policy: every class's policy in effect, and whether it is the default. */
export const OrgPolicyAnswer = z.object({
  orgId: z.string(),
  policies: z.record(z.enum(CLASS_ORDER), ClassPolicy.extend({ isDefault: z.boolean() })),
});
export type OrgPolicyAnswer = z.infer<typeof OrgPolicyAnswer>;

/** PATCH /api/v1/spaces/:spaceId {classification}: raise a space's class. */
export const ChangeClassRequest = z.object({ classification: z.enum(CLASS_ORDER) }).strict();

/** Something a space shares that a higher class would refuse: the body of a refused raise lists them (`blocking`). */
export const RaiseBlocker = z.object({
  kind: z.enum(['member', 'share', 'link']),
  /** The member's user id, the share's or the link's id. */
  id: z.string(),
  /** The member's or the recipient's address; null for a link. */
  email: z.string().nullable(),
  problem: z.string(),
});
export type RaiseBlocker = z.infer<typeof RaiseBlocker>;
/**
 * Why `policy` refuses a file request (an upload-only link, docs/api.md "File requests"), or null: a request is allowed
 * where links are, and expires within the class's longest link life. Password and download rules do not apply.
 */
export function requestPolicyProblem(className: ClassName, policy: ClassPolicy, expiresAt: number, now = Date.now()): string | null {
  if (!policy.linksAllowed) return `file requests are not allowed for ${className} spaces (links are not allowed)`;
  const days = (expiresAt - now) / 86_400_000;
  if (days > policy.maxLinkDays + 1 / 1440) return `file requests of ${className} spaces expire within ${policy.maxLinkDays} day${policy.maxLinkDays === 1 ? '' : 's'}`;
  return null;
}
