import { randomUUID } from 'node:crypto';
import { isStoreUnavailable } from './availability.ts';
import { JOB_ATTEMPTS, type JobQueue } from './queue.ts';
import { type JobStatus, type JobStore, optimisationUnitOf } from './store.ts';

/** The demo knobs of `POST /jobs`: `{ "options": { "delayMs": 500, "failAttempts": 2 } }`. */
export interface JobOptions {
  /** Milliseconds before the job may run (BullMQ's `delay`). */
  delayMs?: number;
  /** The worker fails this many attempts of the job on purpose (retry demo); {@link JOB_ATTEMPTS} or more fails it for good. */
  failAttempts?: number;
}

export const MAX_DELAY_MS = 60_000;

export type OptionsValidation = { ok: true; options: JobOptions } | { ok: false; message: string };

function boundedInteger(value: unknown, max: number): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max;
}

/** Validates the optional `options` field of a `POST /jobs` body. */
export function validateJobOptions(value: unknown): OptionsValidation {
  if (value === undefined) return { ok: true, options: {} };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, message: '"options" must be an object like { "delayMs": 500, "failAttempts": 2 }' };
  }
  const { delayMs, failAttempts, ...unknown } = value as Record<string, unknown>;
  const extra = Object.keys(unknown)[0];
  if (extra !== undefined) {
    return {
      ok: false,
      message: `"options" may hold "delayMs" and "failAttempts" only, got ${JSON.stringify(extra.slice(0, 40))}`,
    };
  }
  if (delayMs !== undefined && !boundedInteger(delayMs, MAX_DELAY_MS)) {
    return { ok: false, message: `"options.delayMs" must be an integer from 0 to ${MAX_DELAY_MS}` };
  }
  if (failAttempts !== undefined && !boundedInteger(failAttempts, JOB_ATTEMPTS)) {
    return { ok: false, message: `"options.failAttempts" must be an integer from 0 to ${JOB_ATTEMPTS}` };
  }
  const options: JobOptions = {};
  if (delayMs !== undefined) options.delayMs = delayMs as number;
  if (failAttempts !== undefined) options.failAttempts = failAttempts as number;
  return { ok: true, options };
}

/** The store or the queue could not take the job: the HTTP apps answer 503 with `message`. */
export class JobsUnavailableError extends Error {
  override readonly name = 'JobsUnavailableError';
}

/** A problem the API validated; its own type stays the API's. */
export interface SubmittedProblem {
  type: string;
}

/**
 * How long `submitJob` waits for the queue to take a job before it answers that the queue is
 * unavailable. `enableOfflineQueue: false` makes `add` fail at once only on a connection that
 * has been ready before: a queue that has never reached Redis waits for it however long it
 * takes, and so would the request, with its row left `queued`.
 */
export const ENQUEUE_TIMEOUT_MS = 2000;

/** Ids are `randomUUID()`s: anything else names no job, and is answered without a query. */
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Adds the job's id to the queue, or rejects once {@link ENQUEUE_TIMEOUT_MS} have passed. */
async function enqueue(queue: JobQueue, id: string, options: JobOptions): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the job queue did not answer within ${ENQUEUE_TIMEOUT_MS} ms`)),
      ENQUEUE_TIMEOUT_MS,
    );
  });
  try {
    // Wait for the connection before adding: an `add` issued now would run whenever Redis comes
    // back, long after the client was told 503 and the row marked failed.
    await Promise.race([queue.waitUntilReady(), deadline]);
    const added = queue.add(
      'solve',
      { jobId: id },
      options.delayMs ? { jobId: id, delay: options.delayMs } : { jobId: id },
    );
    try {
      await Promise.race([added, deadline]);
    } catch (error) {
      // A command sent to a Redis that stopped answering may still go through later: take that
      // job back, so the worker does not run a job its client was told had failed.
      added.then(() => queue.remove(id)).catch(() => undefined);
      throw error;
    }
  } finally {
    clearTimeout(timer);
  }
}

async function storeAndEnqueue(
  store: JobStore,
  queue: JobQueue,
  problem: SubmittedProblem,
  options: JobOptions = {},
): Promise<string> {
  const id = randomUUID();
  try {
    await store.job.create({
      data: { id, status: 'queued', problem: problem as object, failAttempts: options.failAttempts ?? 0 },
    });
  } catch (error) {
    // Any other failure is a bug or a broken schema, not something a retry fixes: a 500.
    if (!isStoreUnavailable(error)) throw error;
    throw new JobsUnavailableError('the job store is unavailable, try again later', { cause: error });
  }
  try {
    await enqueue(queue, id, options);
  } catch (error) {
    await store.job
      .update({ where: { id }, data: { status: 'failed', error: 'the job queue was unavailable' } })
      .catch(() => undefined);
    throw new JobsUnavailableError('the job queue is unavailable, try again later', { cause: error });
  }
  return id;
}

/**
 * Stores the job (`queued`) and enqueues its id, as the `optimisation` business unit's
 * `submit_job` operation (span, duration and outcome metrics, a `job_submitted` event). When the
 * queue refuses it or does not take it within {@link ENQUEUE_TIMEOUT_MS} (Redis away), the row
 * is marked `failed` and a {@link JobsUnavailableError} is thrown; so it is when the database
 * cannot be reached ({@link isStoreUnavailable}). Other store errors are rethrown as they are.
 */
export function submitJob(
  store: JobStore,
  queue: JobQueue,
  problem: SubmittedProblem,
  options: JobOptions = {},
): Promise<string> {
  const unit = optimisationUnitOf(store);
  if (unit === undefined) return storeAndEnqueue(store, queue, problem, options);
  return unit.operation('submit_job', async () => {
    const id = await storeAndEnqueue(store, queue, problem, options);
    unit.event('job_submitted', { job_id: id, problem_type: problem.type });
    return id;
  });
}

/** A job as `GET /jobs/:id` answers it. */
export interface JobView {
  id: string;
  type: string;
  status: JobStatus;
  attempts: number;
  created_at: string;
  updated_at: string;
  result?: unknown;
  error?: string;
}

/**
 * Reads a job for `GET /jobs/:id`, as the `optimisation` unit's `get_job` operation; `undefined`
 * when there is none, without a query when `id` cannot be a job's id. A database that cannot be
 * reached is a {@link JobsUnavailableError}; other store errors are rethrown as they are.
 */
export function findJob(store: JobStore, id: string): Promise<JobView | undefined> {
  const unit = optimisationUnitOf(store);
  return unit === undefined ? readJob(store, id) : unit.operation('get_job', () => readJob(store, id));
}

async function readJob(store: JobStore, id: string): Promise<JobView | undefined> {
  if (!JOB_ID.test(id)) return undefined;
  let row: Awaited<ReturnType<JobStore['job']['findUnique']>>;
  try {
    row = await store.job.findUnique({ where: { id } });
  } catch (error) {
    if (!isStoreUnavailable(error)) throw error;
    throw new JobsUnavailableError('the job store is unavailable, try again later', { cause: error });
  }
  if (row === null) return undefined;
  const view: JobView = {
    id: row.id,
    type: String((row.problem as { type?: unknown } | null)?.type ?? 'unknown'),
    status: row.status as JobStatus,
    attempts: row.attempts,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
  if (row.result !== null) view.result = row.result;
  if (row.error !== null) view.error = row.error;
  return view;
}

/** Job counts by status (the admin view). */
export async function countJobsByStatus(store: JobStore): Promise<Record<JobStatus, number>> {
  const counts: Record<JobStatus, number> = { queued: 0, running: 0, completed: 0, failed: 0 };
  const groups = await store.job.groupBy({ by: ['status'], _count: { _all: true } });
  for (const group of groups) {
    if (group.status in counts) counts[group.status as JobStatus] = group._count._all;
  }
  return counts;
}
