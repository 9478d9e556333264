import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const PROVIDERS = ['postgresql', 'sqlite'] as const;
export type Provider = (typeof PROVIDERS)[number];

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../node_modules/prisma/build/index.js', import.meta.url));

const LOCK = fileURLToPath(new URL('../generated/.generating', import.meta.url));
const LOCK_WAIT_MS = 120_000;

// Written once both clients are complete: a reader never sees a half-written client.
const COMPLETE = fileURLToPath(new URL('../generated/.complete', import.meta.url));
const generated = () => existsSync(COMPLETE);

/** Where a provider's generated client lives. */
export function clientEntry(provider: Provider): URL {
  return new URL(`../generated/${provider}/client.ts`, import.meta.url);
}

/**
 * Runs `prisma generate` for both schemas. No network: Prisma 7 generates without an engine, but
 * its CLI still wants PRISMA_SCHEMA_ENGINE_BINARY to name an executable.
 */
export async function generateClients(): Promise<void> {
  const env = {
    ...process.env,
    PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? '/bin/true',
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
    CHECKPOINT_DISABLE: '1',
  };
  rmSync(COMPLETE, { force: true });
  await Promise.all(
    PROVIDERS.map((provider) =>
      run(process.execPath, [CLI, 'generate', '--schema', `prisma/${provider}/schema.prisma`], {
        cwd: ROOT,
        env,
      }),
    ),
  );
  writeFileSync(COMPLETE, '');
}

/**
 * Generates the clients when a clone was installed without running `postinstall`. The API and
 * the worker may start together: one process generates (holding a lock directory), the other
 * waits for it.
 */
export async function ensureClients(): Promise<void> {
  if (generated()) return;
  mkdirSync(dirname(LOCK), { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (Date.now() > deadline)
        throw new Error(`job-store: ${LOCK} is held; remove it if no process is generating`);
      await sleep(200);
    }
  }
  try {
    if (!generated()) await generateClients();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
