// device-admin-api.test.ts on PostgreSQL (helpers/postgres.ts starts a throwaway cluster for this file).
import { usePostgres } from '../helpers/postgres-suite.js';
import './device-admin-api.test.js';

usePostgres();
