/** The embedded-SQLite side of job-store, which the end-to-end test (PostgreSQL) does not take. */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSextant, type Sextant } from '@sextant/core';
import {
  createJobQueue,
  createJobStore,
  findJob,
  type JobStore,
  submitJob,
  validateJobOptions,
} from 'job-store';
import { createTestBackends } from 'job-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

function testSextant(): Sextant {
  return createSextant({
    serviceName: 'job-store-test',
    env: {},
    tracing: { exporter: 'memory' },
    logs: { level: 'silent' },
    metrics: { defaultMetrics: false },
  });
}

describe('job-store on an embedded SQLite file', () => {
  const file = join(tmpdir(), `sextant-job-store-${randomBytes(5).toString('hex')}.db`);
  const backends = createTestBackends('job_store_sqlite');
  const sextants = [testSextant(), testSextant()];
  let stores: JobStore[];

  beforeAll(async () => {
    // Two processes' worth of clients opening (and migrating) the same new file at once.
    stores = await Promise.all(
      sextants.map((sextant) => createJobStore(sextant, { databaseUrl: `file:${file}` })),
    );
  });
  afterAll(async () => {
    for (const sextant of sextants) await sextant.shutdown();
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
    await backends.cleanup();
  });

  it('migrates once when two clients open the file together', async () => {
    const applied = await stores[0]!.$queryRawUnsafe<Array<{ name: string }>>(
      'SELECT name FROM "_sextant_migrations"',
    );
    expect(applied.map((row) => row.name)).toEqual(['20261125000000_init']);
  });

  it('stores a job that the other client reads, with a sqlite span', async () => {
    const [sextant] = sextants;
    const queue = createJobQueue(sextant!, {
      redisUrl: backends.env.REDIS_URL,
      prefix: backends.env.SEXTANT_QUEUE_PREFIX,
    });
    const id = await submitJob(stores[0]!, queue, { type: 'maxcut' }, { failAttempts: 1 });
    expect(await findJob(stores[1]!, id)).toMatchObject({
      id,
      type: 'maxcut',
      status: 'queued',
      attempts: 0,
    });
    expect(await findJob(stores[1]!, 'missing')).toBeUndefined();
    const insert = sextant!.tracing.finishedSpans().find((span) => span.name === 'create Job');
    expect(insert?.attributes['db.system.name']).toBe('sqlite');
    const ready = await sextant!.health.readiness();
    expect(ready.statusCode).toBe(200);
  });

  it('refuses a DATABASE_URL that is neither PostgreSQL nor a file', async () => {
    await expect(createJobStore(testSextant(), { databaseUrl: 'mysql://localhost/x' })).rejects.toThrow(
      /DATABASE_URL must be a postgres/,
    );
  });

  it.each([
    [undefined, { ok: true, options: {} }],
    [
      { delayMs: 500, failAttempts: 2 },
      { ok: true, options: { delayMs: 500, failAttempts: 2 } },
    ],
    [{ delayMs: 1.5 }, { ok: false, message: '"options.delayMs" must be an integer from 0 to 60000' }],
    [[], { ok: false, message: '"options" must be an object like { "delayMs": 500, "failAttempts": 2 }' }],
  ])('validates options %j', (options, expected) => {
    expect(validateJobOptions(options)).toEqual(expected);
  });
});
