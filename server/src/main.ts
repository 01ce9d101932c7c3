// Starts the Kluis server: reads the configuration, opens its services, listens, and shuts down gracefully
// (stops accepting, lets in-flight requests such as uploads finish, then closes the database).
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { pino } from 'pino';
import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { DatabaseOpenError, openServices, type OpenedServices } from './services.js';
import { runMaintenance } from './services/maintenance.js';
import { withMaintenanceLock } from './db/maintenance-lock.js';
import { SigningKeyFileError } from './audit/signing-key.js';
import { loadIncidentConfig, startIncidents, type IncidentConfig } from './incidents/index.js';
import { setServerHeapGrowth } from './heap-growth.js';

// Everything the server creates (database, keys, blobs) is for its own user only: see data-dir.ts.
process.umask(0o077);
setServerHeapGrowth();

let config: Config;
let incidentConfig: IncidentConfig;
try {
  config = loadConfig();
  incidentConfig = loadIncidentConfig(process.env, config);
} catch (err) {
  if (err instanceof ConfigError) {
    // One line per problem: production lists everything it refuses at once (config-production.ts).
    for (const problem of err.problems) console.error(`kluis-server: configuration error: ${problem}`);
    process.exit(2);
  }
  throw err;
}

const log = pino({ level: config.logLevel, base: { service: 'kluis-server' }, redact: ['req.headers.authorization', 'req.headers.cookie', '*.token', '*.authKey', '*.auth', '*.authHash', '*.wrapped'] });
let services: OpenedServices;
try {
  services = await openServices(config, log);
} catch (err) {
  // One line, as for a bad configuration (the message holds no password: services.ts).
  if (!(err instanceof DatabaseOpenError || err instanceof SigningKeyFileError)) throw err;
  console.error(`kluis-server: ${err.message}`);
  process.exit(1);
}
services.audit.start();
// Rules over the audit trail open incidents and mail security advisors (incidents/).
const incidents = startIncidents(services, incidentConfig);
// One node owns this data directory: nothing can be in flight, so every orphan object (a crash mid-upload or
// mid-compaction) can go now. On PostgreSQL another node may share the object store and be mid-upload: only
// objects older than the usual grace go, and only if no other node is running maintenance (db/maintenance-lock.ts).
await withMaintenanceLock(config.databaseUrl, () => services.chunks.sweepOrphans(config.databaseUrl ? {} : { graceMs: 0 }));
const MAINTENANCE_EVERY_MS = 3_600_000;
let maintaining = false;
const maintenance = setInterval(() => {
  if (maintaining) return;
  maintaining = true;
  // On PostgreSQL, on one node at a time: the others skip this round (db/maintenance-lock.ts).
  withMaintenanceLock(config.databaseUrl, () => runMaintenance(services)).then(
    (turn) => {
      if (!turn.ran) return log.info('maintenance runs on another node: skipped this round');
      const r = turn.result;
      log.info({ retention: r.retention, compaction: r.compaction, sweep: r.sweep }, 'maintenance done');
    },
    (err) => log.error({ err }, 'maintenance failed'),
  ).finally(() => { maintaining = false; });
}, MAINTENANCE_EVERY_MS);
maintenance.unref();
const firstStart = (await services.db('orgs').count({ n: '*' }).first())?.n === 0;
const app = createApp(services, { serverSecret: services.serverSecret, totpKey: services.totpKey });
// HTTPS when KLUIS_TLS_CERT and KLUIS_TLS_KEY are set (files read once, at start), plain HTTP otherwise.
function createServer(): ReturnType<typeof createHttpServer> | ReturnType<typeof createHttpsServer> {
  if (!config.tls) return createHttpServer(app.callback());
  try {
    return createHttpsServer({ cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, app.callback());
  } catch (err) {
    console.error(`kluis-server: configuration error: KLUIS_TLS_CERT, KLUIS_TLS_KEY: not a usable certificate and key (${(err as Error).message})`);
    process.exit(2);
  }
}
const server = createServer();
server.listen(config.port, config.host, () => {
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  // Without KLUIS_PUBLIC_URL, links and requests name the address the server really listens on (KLUIS_PORT=0 lets the
  // system choose the port; with KLUIS_TLS_* it is https).
  if (!process.env.KLUIS_PUBLIC_URL) config.publicUrl = `${config.tls ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  log.info({ port, host: config.host, env: config.env, tls: Boolean(config.tls), storage: config.storage, database: config.databaseUrl ? 'postgresql' : 'sqlite' }, 'listening');
  console.log(`Kluis server listening on ${config.tls ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port} (env ${config.env}, data in ${config.dataDir})`);
  if (firstStart) {
    console.log('No organisation yet. Create the first one (prints a one-time invite for its main access admin):');
    console.log('  npx kluis-admin org create --name "OCMW Gent" --enterprise-number 0212345668 --admin-email admin@example.be');
  }
});

// Keep idle connections longer than clients take to prepare a large batch (Node's default is 5 s, after which a
// client reusing the socket for a POST gets EPIPE); the headers timeout must exceed it.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;

let stopping = false;
// Responses in progress. Once shutdown began, no connection is kept alive after its response: an answer whose
// headers are not out yet says `Connection: close`, and a connection that goes idle is closed at once (a kept-alive
// socket would otherwise hold server.close() open until the 20 s limit below).
const inFlight = new Set<ServerResponse>();
server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
  inFlight.add(res);
  if (stopping) res.setHeader('Connection', 'close');
  res.once('close', () => inFlight.delete(res));
  res.once('finish', () => {
    if (stopping) setImmediate(() => server.closeIdleConnections());
  });
});
function shutdown(signal: string): void {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down: finishing in-flight requests');
  for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
  server.close(() => {
    void incidents.stop().then(() => services.close()).then(() => process.exit(0), (err) => {
      log.error({ err }, 'error while closing');
      process.exit(1);
    });
  });
  // Idle keep-alive and event-stream connections would hold close() open: end them, let busy ones finish.
  clearInterval(maintenance);
  services.events.close();
  server.closeIdleConnections();
  setTimeout(() => server.closeAllConnections(), 20_000).unref();
  setTimeout(() => process.exit(1), 30_000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
