// commit-combiner.test.ts on PostgreSQL.
import { usePostgres } from '../helpers/postgres-suite.js';
import './commit-combiner.test.js';

usePostgres();
