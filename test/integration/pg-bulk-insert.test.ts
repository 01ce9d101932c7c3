// bulk-insert.test.ts on PostgreSQL (helpers/postgres.ts starts a throwaway cluster for this file).
import { usePostgres } from '../helpers/postgres-suite.js';
import './bulk-insert.test.js';

usePostgres();
