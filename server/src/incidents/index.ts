// Starts incident watching on a server node: the watcher (rules over the trail, the chain's verification) and the
// notifier that mails each new incident. main.ts starts it after the services; stop() before they close.
import type { OpenedServices } from '../services.js';
import type { IncidentConfig } from './config.js';
import { IncidentNotifier } from './mail.js';
import { IncidentWatcher } from './watcher.js';

export { loadIncidentConfig, type IncidentConfig } from './config.js';

export function startIncidents(services: OpenedServices, config: IncidentConfig): { stop(): Promise<void> } {
  const notifier = new IncidentNotifier(services.db, services.audit, config, services.log);
  const watcher = new IncidentWatcher(services.db, services.audit, {
    intervalMs: config.intervalMs,
    verifyEveryMs: config.verifyEveryMs,
    postgres: Boolean(services.config.databaseUrl),
    onError: (err) => services.log.error({ err }, 'incident round failed'),
    afterRound: async () => void (await notifier.flush()),
  });
  watcher.start();
  return {
    async stop() {
      await watcher.stop();
      notifier.close();
    },
  };
}
