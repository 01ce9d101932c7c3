// group-commit.test.ts on PostgreSQL: savepoints per caller, rollbacks, a broken group (helpers/postgres.ts).
import { usePostgres } from '../helpers/postgres-suite.js';
import './group-commit.test.js';

usePostgres();
