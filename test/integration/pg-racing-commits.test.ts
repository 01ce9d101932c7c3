// racing-commits.test.ts on PostgreSQL: two server processes (API nodes) on one database.
import { usePostgres } from '../helpers/postgres-suite.js';
import './racing-commits.test.js';

usePostgres();
