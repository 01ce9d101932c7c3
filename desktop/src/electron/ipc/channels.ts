// The names of the IPC contract's channels (./contract.ts holds their schemas). Kept free of imports: the sandboxed
// preload bundles this file alone, so it stays a few hundred bytes and carries no schema library.
export const CHANNEL_NAMES = [
  'app:status',
  'account:signup', 'account:login', 'account:confirmRecovery', 'account:logout',
  'spaces:list',
  'folders:add', 'folders:pause', 'folders:resume', 'folders:remove', 'folders:open', 'folders:choose',
  'conflicts:list', 'conflicts:resolve',
  'share:link', 'share:colleague', 'share:file',
  'share:member',
  'versions:list', 'versions:restore',
  'devices:list', 'devices:revoke',
  'settings:get', 'settings:set',
] as const;
export type Channel = (typeof CHANNEL_NAMES)[number];

/** Main → renderer events travel on this one channel. */
export const EVENT_CHANNEL = 'event';

/** Codes the IPC layer itself answers with. */
export const IPC_ERRORS = {
  badRequest: 'bad_request',
  unknownChannel: 'unknown_channel',
  forbiddenSender: 'forbidden_sender',
  internal: 'internal',
} as const;
