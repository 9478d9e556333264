import { createServer } from 'node:net';
import { createSextant, type Sextant } from '@sextant/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createJobQueue,
  createJobStore,
  ENQUEUE_TIMEOUT_MS,
  findJob,
  type JobQueue,
  type JobStore,
  JobsUnavailableError,
  submitJob,
} from '../src/index.ts';
import { createTestBackends } from '../src/testing.ts';

const SQUARE = {
  type: 'maxcut',
  edges: [
    [0, 1],
    [1, 2],
    [2, 3],
    [3, 0],
  ],
};

/** A port nothing listens on: connections to it are refused. */
async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function testSextant(): Sextant {
  return createSextant({
    serviceName: 'job-store-test',
    tracing: { exporter: 'memory' },
    logs: { destination: { write: () => undefined } },
    env: {},
  });
}

describe('submitJob with a Redis that was never reachable', () => {
  const backends = createTestBackends('store_redis_refused');
  let sextant: Sextant;
  let store: JobStore;
  let queue: JobQueue;

  beforeAll(async () => {
    sextant = testSextant();
    store = await createJobStore(sextant, { databaseUrl: backends.env.DATABASE_URL });
    queue = createJobQueue(sextant, { redisUrl: `redis://127.0.0.1:${await refusedPort()}` });
  });
  afterAll(async () => {
    await sextant?.shutdown();
    await backends.cleanup();
  });

  it('gives up after ENQUEUE_TIMEOUT_MS: JobsUnavailableError, and the row marked failed', async () => {
    const started = performance.now();
    const error = await submitJob(store, queue, SQUARE).then(
      () => undefined,
      (rejection: unknown) => rejection,
    );
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(JobsUnavailableError);
    expect((error as Error).message).toBe('the job queue is unavailable, try again later');
    expect(elapsed).toBeGreaterThanOrEqual(ENQUEUE_TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(ENQUEUE_TIMEOUT_MS + 2000);
    expect(await backends.countJobs()).toEqual({ queued: 0, running: 0, completed: 0, failed: 1 });
    const [row] = await backends.sql('SELECT status, error FROM "Job"');
    expect(row).toEqual({ status: 'failed', error: 'the job queue was unavailable' });
  });
});

describe('findJob and submitJob on a reachable database', () => {
  const backends = createTestBackends('store_errors');
  let sextant: Sextant;
  let store: JobStore;
  let queue: JobQueue;

  beforeAll(async () => {
    sextant = testSextant();
    store = await createJobStore(sextant, { databaseUrl: backends.env.DATABASE_URL });
    queue = createJobQueue(sextant, {
      redisUrl: backends.env.REDIS_URL,
      prefix: backends.env.SEXTANT_QUEUE_PREFIX,
    });
  });
  afterAll(async () => {
    await sextant?.shutdown();
    await backends.cleanup();
  });

  it('finds a job by its id, and nothing for an unknown one', async () => {
    const id = await submitJob(store, queue, SQUARE, { delayMs: 60_000 });
    expect(await findJob(store, id)).toMatchObject({ id, type: 'maxcut', status: 'queued' });
    expect(await findJob(store, '00000000-0000-4000-8000-000000000000')).toBeUndefined();
  });

  // PostgreSQL refuses a NUL in text: such an id used to fail the query, answered as an outage.
  it.each(['\0', 'a\0b', 'not-a-job', '0'.repeat(36), '00000000-0000-4000-8000-000000000000/x'])(
    'finds nothing for %j, which cannot be a job id',
    async (id) => {
      expect(await findJob(store, id)).toBeUndefined();
    },
  );

  it('rethrows a store error that is not an outage, for a 500 rather than a 503', async () => {
    await backends.sql('ALTER TABLE "Job" RENAME TO "Job_moved"');
    try {
      const read = await findJob(store, '00000000-0000-4000-8000-000000000000').then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(read).toBeInstanceOf(Error);
      expect(read).not.toBeInstanceOf(JobsUnavailableError);
      const submitted = await submitJob(store, queue, SQUARE).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(submitted).toBeInstanceOf(Error);
      expect(submitted).not.toBeInstanceOf(JobsUnavailableError);
    } finally {
      await backends.sql('ALTER TABLE "Job_moved" RENAME TO "Job"');
    }
  });
});
