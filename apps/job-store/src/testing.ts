/**
 * Test support for the apps that use the job store: a private PostgreSQL schema and BullMQ key
 * prefix per test file, so files running in parallel never see each other's jobs.
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import pg from 'pg';
import { DEFAULT_REDIS_URL, JOB_QUEUE_NAME } from './constants.ts';
import { ensureClients } from './generate.ts';
import type { JobStatus } from './store.ts';

export const TEST_POSTGRES_URL =
  process.env.SEXTANT_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.SEXTANT_TEST_REDIS_URL ?? DEFAULT_REDIS_URL;

export interface TestBackends {
  /** `DATABASE_URL` (a fresh schema, created by the first process that opens the store), `REDIS_URL`, `SEXTANT_QUEUE_PREFIX`. */
  readonly env: { DATABASE_URL: string; REDIS_URL: string; SEXTANT_QUEUE_PREFIX: string };
  readonly schema: string;
  /** Job rows by status in the schema (all four statuses, 0 when none or before the table exists). */
  countJobs(): Promise<Record<JobStatus, number>>;
  /** Runs SQL with the schema first on the search path: to inspect the store, or to break it on purpose. */
  sql(text: string): Promise<Array<Record<string, unknown>>>;
  /** Drops the schema and the queue's keys. */
  cleanup(): Promise<void>;
}

export function createTestBackends(label: string): TestBackends {
  const suffix = `${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(5).toString('hex')}`;
  const schema = `jobs_${suffix}`;
  const prefix = `test_${suffix}`;
  const sql = async (text: string) => {
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await client.connect();
    try {
      await client.query(`SET search_path TO "${schema}"`);
      return (await client.query<Record<string, unknown>>(text)).rows;
    } finally {
      await client.end();
    }
  };
  return {
    env: {
      DATABASE_URL: `${TEST_POSTGRES_URL}?schema=${schema}`,
      REDIS_URL: TEST_REDIS_URL,
      SEXTANT_QUEUE_PREFIX: prefix,
    },
    schema,
    async countJobs() {
      const counts: Record<JobStatus, number> = { queued: 0, running: 0, completed: 0, failed: 0 };
      const exists = await sql(`SELECT to_regclass('"${schema}"."Job"') IS NOT NULL AS present`);
      if (exists[0]?.present !== true) return counts;
      for (const row of await sql('SELECT status, count(*)::int AS n FROM "Job" GROUP BY status')) {
        counts[row.status as JobStatus] = row.n as number;
      }
      return counts;
    },
    sql,
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
