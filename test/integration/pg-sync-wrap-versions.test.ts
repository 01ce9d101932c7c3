// sync-wrap-versions.test.ts on PostgreSQL (helpers/postgres.ts starts a throwaway cluster for this file).
import { usePostgres } from '../helpers/postgres-suite.js';
import './sync-wrap-versions.test.js';

usePostgres();
