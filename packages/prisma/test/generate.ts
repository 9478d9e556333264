/**
 * Generates the test clients (into test/generated, gitignored) from the fixture schemas. The
 * engine download is unreachable in CI and Prisma 7 generates without one, but the CLI still
 * wants PRISMA_SCHEMA_ENGINE_BINARY to name an executable.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const PROVIDERS = ['postgresql', 'sqlite'] as const;

export async function generateClients(): Promise<void> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const cli = fileURLToPath(new URL('../node_modules/prisma/build/index.js', import.meta.url));
  const env = {
    ...process.env,
    PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? '/bin/true',
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
    CHECKPOINT_DISABLE: '1',
  };
  await Promise.all(
    PROVIDERS.map((provider) =>
      run(process.execPath, [cli, 'generate', '--schema', `test/fixtures/${provider}/schema.prisma`], {
        cwd: root,
        env,
      }),
    ),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await generateClients();
