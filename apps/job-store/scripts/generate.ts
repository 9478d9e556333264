/**
 * Generates the Prisma clients (into generated/, gitignored) from the two schemas, offline: Prisma 7
 * generates without an engine, but its CLI still wants PRISMA_SCHEMA_ENGINE_BINARY to name an
 * executable. Run by `postinstall` and `pnpm --filter job-store generate`. With `--if-missing`
 * (the typecheck), only when no complete client is there: regenerating rewrites generated/ while
 * the other apps' typechecks, run in parallel, read it.
 */
import { ensureClients, generateClients } from '../src/generate.ts';

if (process.argv.includes('--if-missing')) await ensureClients();
else await generateClients();
