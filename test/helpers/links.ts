// A share link made the way `kluis share link` makes it, on a one-chunk file committed first: for suites that need
// links to exist (the admin console's views) rather than to test link crypto (links-api, link-page do that).
import * as k from '@kluis/shared';
import { call, type User } from './api.js';
import { newFile, version } from './files.js';
import { pseudoRandom } from './chunks.js';

export async function quickLink(base: string, owner: User, space: { spaceId: string; pair: k.SpaceKeyPair }, opts: { purpose: string; maxDownloads?: number | null; days?: number }): Promise<string> {
  const f = newFile();
  const content = pseudoRandom(opts.purpose.length, 4096);
  const chunk = k.encryptChunk(f.sub, content);
  const up = await fetch(`${base}/api/v1/spaces/${space.spaceId}/chunks/upload`, { method: 'POST', headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/octet-stream' }, body: k.encodeFrames([chunk]) });
  if (up.status !== 201) throw new Error(`upload: ${up.status}`);
  const v = version(owner, space.spaceId, space.pair, 1, f, { parent: null, path: 'verslag.pdf', chunks: [[chunk.id, content.length]], hash: k.contentHash(content) });
  const commit = await call(base, 'POST', `/api/v1/spaces/${space.spaceId}/commits`, { token: owner.token, json: { versions: [v.entry] } });
  if (commit.status !== 201) throw new Error(`commit: ${JSON.stringify(commit.body)}`);
  const linkId = k.newId();
  const keys = k.deriveLinkKeys(k.newLinkSecret(), null);
  const res = await call(base, 'POST', `/api/v1/spaces/${space.spaceId}/links`, {
    token: owner.token,
    json: {
      linkId, fileId: f.fileId, versionId: v.versionId, kdf: null, authHash: k.linkAuthHash(keys.linkAuth),
      wrapped: k.toBase64Url(k.wrapFileKeyForLink(f.fileKey, linkId, keys)), expiresAt: Date.now() + (opts.days ?? 7) * 86_400_000,
      maxDownloads: opts.maxDownloads ?? null, purpose: opts.purpose,
    },
  });
  if (res.status !== 201) throw new Error(`link: ${JSON.stringify(res.body)}`);
  return linkId;
}
