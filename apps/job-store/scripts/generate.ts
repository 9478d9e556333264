/**
 * Generates the Prisma clients (into generated/, gitignored) from the two schemas, offline: Prisma 7
 * generates without an engine, but its CLI still wants PRISMA_SCHEMA_ENGINE_BINARY to name an
 * executable. Run by `postinstall`, and by `ensureClients()` when a client is missing at start.
 */
import { generateClients } from '../src/generate.ts';

await generateClients();
