// desktop-renderer-manage.test.ts on PostgreSQL (helpers/postgres.ts starts a throwaway cluster for this file).
import { usePostgres } from '../helpers/postgres-suite.js';
import './desktop-renderer-manage.test.js';

usePostgres();
