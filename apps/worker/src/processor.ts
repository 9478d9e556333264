import type { Sextant } from '@sextant/core';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import { isStoreUnavailable, type JobData, type JobStore, storeErrorReason } from 'job-store';
import { InvalidProblemError, type Problem, type SolveOutcome, type Solver } from './solver/index.ts';

/** Thrown on purpose for the first `failAttempts` attempts of a job (the retry demo). */
export class DemoFailureError extends Error {
  override readonly name = 'DemoFailureError';
}

/** What the `result` column holds once a job has completed. */
export interface StoredResult {
  solver: SolveOutcome['solver'];
  provider: string;
  backend: string;
  assignment: number[];
  value: number;
  fallback_reason?: string;
  total_ms: number;
}

function storedResult(outcome: SolveOutcome): StoredResult {
  const result: StoredResult = {
    solver: outcome.solver,
    provider: outcome.provider,
    backend: outcome.backend,
    assignment: outcome.result.assignment,
    value: outcome.result.value,
    total_ms: outcome.durations.totalMs,
  };
  if (outcome.fallbackReason !== undefined) result.fallback_reason = outcome.fallbackReason;
  return result;
}

function isMissingRow(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'P2025';
}

/** A job deferred because the database was unreachable runs again after this long, doubling per deferral... */
export const STORE_DEFER_BASE_MS = 1000;
/** ...up to this. */
export const STORE_DEFER_MAX_MS = 30_000;

/**
 * How long to defer a job that found the database away: {@link STORE_DEFER_BASE_MS}, doubled for
 * each earlier start of the job that BullMQ did not count as an attempt (its earlier deferrals),
 * at most {@link STORE_DEFER_MAX_MS}.
 */
export function storeDeferDelay(job: Pick<Job, 'attemptsStarted' | 'attemptsMade'>): number {
  const deferrals = Math.max(0, job.attemptsStarted - job.attemptsMade - 1);
  return Math.min(STORE_DEFER_BASE_MS * 2 ** Math.min(deferrals, 16), STORE_DEFER_MAX_MS);
}

export interface ProcessorOptions {
  /**
   * Called when an attempt could not reach the database, before its job is deferred: the
   * worker's store-outage gate (`store-outage.ts`) pauses taking jobs until the database answers.
   */
  onStoreUnavailable?: (error: unknown, jobId: string) => void;
}

/**
 * The worker's processor: loads the job's row (now `running`, its `attempts` the number of this
 * attempt as BullMQ counts it, `attemptsMade` + 1), fails on purpose while the row asks for it,
 * solves the problem and stores the result (`completed`). The last failing attempt marks the row
 * `failed`; an earlier one puts it back to `queued` for the retry. An invalid problem or a missing
 * row cannot succeed later, so BullMQ is told not to retry.
 *
 * An attempt that cannot reach the database (to start, to store its result or to record its
 * failure) does not count: the job goes back to BullMQ's delayed set with a backoff
 * ({@link storeDeferDelay}) without spending one of its attempts, `onStoreUnavailable` is
 * called, and the attempt ends with BullMQ's `DelayedError`. So the row never stays behind
 * BullMQ's state: once the database is back, the job runs the same attempt again (the row's
 * `attempts` unchanged) and its row ends `completed` (or `failed`, recorded).
 */
export function createProcessor(
  sextant: Sextant,
  store: JobStore,
  solver: Solver,
  options: ProcessorOptions = {},
): (job: Job<JobData>, token?: string) => Promise<{ solver: string }> {
  const log = sextant.logger.child({ component: 'processor' });

  async function defer(
    job: Job<JobData>,
    token: string | undefined,
    attempt: number,
    error: unknown,
  ): Promise<never> {
    const { jobId } = job.data;
    // Without the lock's token the job cannot be moved: the ordinary failure path is all that is left.
    if (token === undefined) throw error;
    options.onStoreUnavailable?.(error, jobId);
    const delayMs = storeDeferDelay(job);
    try {
      await job.moveToDelayed(Date.now() + delayMs, token);
    } catch (moveError) {
      log.warn({ job_id: jobId, attempt, err: moveError }, 'could not defer the job, failing the attempt');
      throw error;
    }
    log.debug(
      { job_id: jobId, attempt, delay_ms: delayMs, reason: storeErrorReason(error) },
      'job deferred, the database is unreachable',
    );
    throw new DelayedError(`job ${jobId}: the database is unreachable, deferred ${delayMs} ms`);
  }

  return async function processJob(job, token) {
    const { jobId } = job.data;
    // BullMQ's own count: a deferral (`moveToDelayed`, attempt skipped) or a stall leaves
    // `attemptsMade` as it was, so the rerun is the same attempt again.
    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    // A solver error is an ordinary failure, whatever it looks like: only store calls are deferred.
    let solverFailed = false;
    try {
      // Set, not incremented: a rerun of a deferred attempt whose row was already updated (the
      // database went away later, while solving or storing) must not count it twice.
      const row = await store.job
        .update({ where: { id: jobId }, data: { status: 'running', attempts: attempt } })
        .catch((error: unknown) => {
          throw isMissingRow(error)
            ? new UnrecoverableError(`job ${jobId}: no such job in the store`)
            : error;
        });
      log.info({ job_id: jobId, attempt }, 'job started');
      if (attempt <= row.failAttempts) {
        throw new DemoFailureError(
          `job ${jobId}: attempt ${attempt} fails on purpose (failAttempts ${row.failAttempts})`,
        );
      }
      let outcome: SolveOutcome;
      try {
        outcome = await solver.solve({ id: jobId, problem: row.problem as unknown as Problem });
      } catch (error) {
        solverFailed = true;
        throw error instanceof InvalidProblemError ? new UnrecoverableError(error.message) : error;
      }
      const result = storedResult(outcome);
      await store.job.update({
        where: { id: jobId },
        data: { status: 'completed', result: { ...result }, error: null },
      });
      log.info({ job_id: jobId, attempt, solver: result.solver, value: result.value }, 'job completed');
      return { solver: result.solver };
    } catch (error) {
      if (!solverFailed && isStoreUnavailable(error)) return defer(job, token, attempt, error);
      const final = error instanceof UnrecoverableError || attempt >= maxAttempts;
      const message = error instanceof Error ? error.message : String(error);
      try {
        await store.job.update({
          where: { id: jobId },
          data: { status: final ? 'failed' : 'queued', error: message },
        });
      } catch (updateError) {
        // The outcome could not be recorded: the attempt does not count, it runs again later.
        if (isStoreUnavailable(updateError)) return defer(job, token, attempt, updateError);
        if (!isMissingRow(updateError))
          log.error({ job_id: jobId, err: updateError }, 'could not record the failure');
      }
      log.warn(
        { job_id: jobId, attempt, final, err: error },
        final ? 'job failed' : 'job attempt failed, will retry',
      );
      throw error;
    }
  };
}
