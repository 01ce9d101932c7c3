// What production refuses (issue 18 item 4, docs/operations.md "Environments"): the shortcuts that make development
// easy and a real service unsafe. Every problem is one line naming its variable, and all of them are listed at once,
// so an operator fixes the configuration in one round instead of one restart per mistake.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { KDF_MODERATE, type KdfParams } from '@kluis/shared';

/** Loopback names and addresses: listening there, or a public URL there, is not reachable from the network. */
export const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/;

/** The shortest /metrics token production accepts (characters): a guessable token is an open /metrics. */
export const METRICS_TOKEN_MIN = 32;

/** Credentials that ship with MinIO and its images: whoever knows MinIO knows them. */
const DEFAULT_S3_SECRETS = new Set(['minioadmin', 'minio123', 'minio', 'admin', 'password']);

export interface ProductionFacts {
  host: string;
  publicUrl: string;
  dataDir: string;
  kdf: KdfParams;
  tls: boolean;
  trustedProxies: string[];
  serverKeyFile: string | undefined;
  storage: 'fs' | 'minio';
  allowEmbeddedStore: boolean;
  s3: { accessKey: string; secretKey: string } | undefined;
  metricsToken: string | undefined;
}

const unbracket = (host: string) => host.replace(/^\[|\]$/g, '');

/** The problems that keep a production server from starting; empty when there are none. */
export function productionProblems(f: ProductionFacts): string[] {
  const problems: string[] = [];
  if (f.kdf.opsLimit < KDF_MODERATE.opsLimit) {
    problems.push(`KLUIS_KDF_OPS_LIMIT: production needs at least ${KDF_MODERATE.opsLimit} Argon2id passes (libsodium MODERATE), got ${f.kdf.opsLimit}`);
  }
  if (f.kdf.memLimit < KDF_MODERATE.memLimit) {
    problems.push(`KLUIS_KDF_MEM_LIMIT: production needs at least ${KDF_MODERATE.memLimit} bytes (256 MiB, libsodium MODERATE), got ${f.kdf.memLimit}`);
  }
  const publicHost = unbracket(new URL(f.publicUrl).hostname);
  const httpsPublic = f.publicUrl.startsWith('https://');
  if (!httpsPublic && !LOOPBACK.test(publicHost)) {
    problems.push(`KLUIS_PUBLIC_URL: production needs https:// outside loopback (got ${f.publicUrl})`);
  }
  if (!LOOPBACK.test(unbracket(f.host)) && !f.tls && !(f.trustedProxies.length > 0 && httpsPublic)) {
    problems.push(
      `KLUIS_HOST: production refuses plain HTTP on ${f.host} (not loopback): set KLUIS_TLS_CERT and KLUIS_TLS_KEY, ` +
        'or, behind a TLS-terminating proxy, set KLUIS_TRUSTED_PROXIES to it and KLUIS_PUBLIC_URL to its https:// address',
    );
  }
  if (f.serverKeyFile === undefined) {
    problems.push('KLUIS_SERVER_KEY_FILE: production needs the server key seed as a configured secret (a 32-byte file outside the data directory); it never generates one beside the database');
  } else if (isInside(f.serverKeyFile, f.dataDir)) {
    problems.push(`KLUIS_SERVER_KEY_FILE: ${f.serverKeyFile} is inside the data directory; production keeps the key seed apart from the database (a copy of one must not carry the other)`);
  } else if (!existsSync(f.serverKeyFile)) {
    problems.push(`KLUIS_SERVER_KEY_FILE: ${f.serverKeyFile} does not exist; production never generates the key seed (create it: head -c 32 /dev/urandom > FILE; chmod 600 FILE)`);
  }
  if (f.storage === 'fs' && !f.allowEmbeddedStore) {
    problems.push('KLUIS_STORAGE: production refuses the embedded fs blob store unless KLUIS_ALLOW_EMBEDDED_STORE=1 says it is on purpose');
  }
  if (f.s3 && (DEFAULT_S3_SECRETS.has(f.s3.accessKey) || DEFAULT_S3_SECRETS.has(f.s3.secretKey))) {
    problems.push('KLUIS_S3_SECRET_KEY: production refuses the object store\'s default credentials (such as minioadmin): give it an access key of its own');
  }
  if (f.metricsToken === undefined) {
    problems.push(`KLUIS_METRICS_TOKEN: production refuses an open /metrics: set a token of at least ${METRICS_TOKEN_MIN} characters (Prometheus sends it as a bearer token)`);
  } else if (f.metricsToken.length < METRICS_TOKEN_MIN) {
    problems.push(`KLUIS_METRICS_TOKEN: production needs at least ${METRICS_TOKEN_MIN} characters, got ${f.metricsToken.length}`);
  }
  return problems;
}

function isInside(file: string, dir: string): boolean {
  const rel = path.relative(path.resolve(dir), path.resolve(file));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
