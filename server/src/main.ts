// Starts the Kluis server: reads the configuration, builds the app, listens, and shuts down gracefully.
import { mkdirSync } from 'node:fs';
import { pino } from 'pino';
import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`kluis-server: configuration error: ${err.message}`);
    process.exit(2);
  }
  throw err;
}

const log = pino({ level: config.logLevel, base: { service: 'kluis-server' }, redact: ['req.headers.authorization', 'req.headers.cookie'] });
mkdirSync(config.dataDir, { recursive: true });
const app = createApp({ config, log });
const server = app.listen(config.port, config.host, () => {
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  log.info({ port, host: config.host, env: config.env, dataDir: config.dataDir }, 'listening');
  console.log(`Kluis server listening on http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port} (env ${config.env}, data in ${config.dataDir})`);
});

function shutdown(signal: string): void {
  log.info({ signal }, 'shutting down: finishing in-flight requests');
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(1), 30_000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
