// desktop-app-folders.test.ts on PostgreSQL (helpers/postgres.ts starts a throwaway cluster for this file).
import { usePostgres } from '../helpers/postgres-suite.js';
import './desktop-app-folders.test.js';

usePostgres();
