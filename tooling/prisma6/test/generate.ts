/**
 * Generates the Prisma 6 clients (into generated/, gitignored). Prisma 6's CLI fetches its query
 * engine even for the Rust-free client unless told where one is; none is used, so any file does,
 * and the schema engine likewise (as for Prisma 7 in packages/prisma).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export default async function generateClients(): Promise<void> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const cli = fileURLToPath(new URL('../node_modules/prisma/build/index.js', import.meta.url));
  const env = {
    ...process.env,
    PRISMA_QUERY_ENGINE_LIBRARY: process.env.PRISMA_QUERY_ENGINE_LIBRARY ?? '/bin/true',
    PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? '/bin/true',
    PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING: '1',
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
    CHECKPOINT_DISABLE: '1',
    // Only read by `prisma generate` to validate the datasource; the tests hand adapters their URLs.
    PRISMA6_CHECK_URL: 'file:unused',
  };
  for (const provider of ['postgresql', 'sqlite']) {
    await run(process.execPath, [cli, 'generate', '--schema', `test/fixtures/${provider}/schema.prisma`], {
      cwd: root,
      env,
    });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await generateClients();
