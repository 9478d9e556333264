/**
 * The processor under a real BullMQ worker (real Redis) and a real job store (an embedded SQLite
 * file), with the database made unreachable for one chosen store call: the row's `attempts` must
 * stay BullMQ's count however the outage falls.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSextant, type Sextant } from '@sextant/core';
import { type Job, Worker } from 'bullmq';
import {
  createJobQueue,
  createJobStore,
  findJob,
  JOB_QUEUE_NAME,
  type JobData,
  type JobQueue,
  type JobStore,
  submitJob,
} from 'job-store';
import { createTestBackends } from 'job-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProcessor } from '../src/processor.ts';
import { createSolver, type Solver } from '../src/solver/index.ts';
import { SOLVER_ENV, SQUARE } from './fixtures.ts';

function testSextant(): Sextant {
  return createSextant({
    serviceName: 'processor-test',
    env: {},
    tracing: { exporter: 'memory' },
    logs: { level: 'silent' },
    metrics: { defaultMetrics: false },
  });
}

type UpdateArgs = Parameters<JobStore['job']['update']>[0];

/**
 * `store`, except that the first `job.update` that `when` picks fails the way an unreachable
 * PostgreSQL server fails it (Prisma's P1001). The processor reaches the store through
 * `job.update` only.
 */
function storeWithOneOutage(store: JobStore, when: (args: UpdateArgs) => boolean): JobStore {
  let struck = false;
  const update = (args: UpdateArgs) => {
    if (!struck && when(args)) {
      struck = true;
      return Promise.reject(
        Object.assign(new Error("Can't reach database server at 127.0.0.1:5432"), { code: 'P1001' }),
      );
    }
    return store.job.update(args);
  };
  return { job: { update } } as unknown as JobStore;
}

describe('the row of a job deferred by a database outage', () => {
  const file = join(tmpdir(), `sextant-processor-${randomBytes(5).toString('hex')}.db`);
  const backends = createTestBackends('worker_processor');
  const sextant = testSextant();
  let store: JobStore;
  let queue: JobQueue;
  let solver: Solver;

  beforeAll(async () => {
    store = await createJobStore(sextant, { databaseUrl: `file:${file}` });
    queue = createJobQueue(sextant, {
      redisUrl: backends.env.REDIS_URL,
      prefix: backends.env.SEXTANT_QUEUE_PREFIX,
    });
    solver = createSolver(sextant, { env: SOLVER_ENV });
  });
  afterAll(async () => {
    solver?.close();
    await sextant.shutdown();
    await backends.cleanup();
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
  });

  // Each job fails its first attempt on purpose (`failAttempts: 1`), so the outage also falls
  // after an attempt that BullMQ did count.
  it.each([
    ['storing the result', (args: UpdateArgs) => args.data.status === 'completed'],
    ['recording the failure of the first attempt', (args: UpdateArgs) => args.data.status === 'queued'],
  ])('keeps BullMQ’s attempt count when the database goes away while %s', async (_label, when) => {
    const deferred: string[] = [];
    const processor = createProcessor(sextant, storeWithOneOutage(store, when), solver, {
      onStoreUnavailable: (_error, jobId) => deferred.push(jobId),
    });
    const id = await submitJob(store, queue, SQUARE, { failAttempts: 1 });
    const worker = new Worker<JobData>(JOB_QUEUE_NAME, processor, {
      connection: { url: backends.env.REDIS_URL },
      prefix: backends.env.SEXTANT_QUEUE_PREFIX,
      concurrency: 1,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        worker.on('completed', (job: Job<JobData>) => {
          if (job.id === id) resolve();
        });
        worker.on('failed', (job, error) => {
          if (job?.id === id && job.attemptsMade >= (job.opts.attempts ?? 1)) reject(error);
        });
      });
    } finally {
      await worker.close();
    }
    expect(deferred).toEqual([id]);
    // One failed attempt and the one that completed; the deferred run counted for neither.
    expect((await queue.getJob(id))?.attemptsMade).toBe(2);
    expect(await findJob(store, id)).toMatchObject({ id, status: 'completed', attempts: 2 });
  });
});
