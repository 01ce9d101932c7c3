// access-cache.test.ts on PostgreSQL, with two API nodes on one database (helpers/postgres.ts starts the cluster).
import { usePostgres } from '../helpers/postgres-suite.js';
import './access-cache.test.js';

usePostgres();
