/**
 * Test support for the apps that use the job store: a private PostgreSQL schema and BullMQ key
 * prefix per test file, so files running in parallel never see each other's jobs.
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import pg from 'pg';
import { DEFAULT_REDIS_URL, JOB_QUEUE_NAME } from './constants.ts';
import { ensureClients } from './generate.ts';

export const TEST_POSTGRES_URL =
  process.env.SEXTANT_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.SEXTANT_TEST_REDIS_URL ?? DEFAULT_REDIS_URL;

export interface TestBackends {
  /** `DATABASE_URL` (a fresh schema, created by the first process that opens the store), `REDIS_URL`, `SEXTANT_QUEUE_PREFIX`. */
  readonly env: { DATABASE_URL: string; REDIS_URL: string; SEXTANT_QUEUE_PREFIX: string };
  readonly schema: string;
  /** Drops the schema and the queue's keys. */
  cleanup(): Promise<void>;
}

export function createTestBackends(label: string): TestBackends {
  const suffix = `${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(5).toString('hex')}`;
  const schema = `jobs_${suffix}`;
  const prefix = `test_${suffix}`;
  return {
    env: {
      DATABASE_URL: `${TEST_POSTGRES_URL}?schema=${schema}`,
      REDIS_URL: TEST_REDIS_URL,
      SEXTANT_QUEUE_PREFIX: prefix,
    },
    schema,
    async cleanup() {
      const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
      const queue = new Queue(JOB_QUEUE_NAME, { connection: { url: TEST_REDIS_URL }, prefix });
      try {
        await queue.obliterate({ force: true });
      } finally {
        await queue.close();
      }
    },
  };
}

/** Vitest `globalSetup`: generate the Prisma clients once, before test files start processes. */
export default async function setup(): Promise<void> {
  await ensureClients();
}
