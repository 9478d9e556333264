import type { Sextant } from '@sextant/core';
import { type Job, UnrecoverableError } from 'bullmq';
import type { JobData, JobStore } from 'job-store';
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

/**
 * The worker's processor: loads the job's row (now `running`, one more attempt), fails on purpose
 * while the row asks for it, solves the problem and stores the result (`completed`). The last
 * failing attempt marks the row `failed`; an earlier one puts it back to `queued` for the retry.
 * An invalid problem or a missing row cannot succeed later, so BullMQ is told not to retry.
 */
export function createProcessor(
  sextant: Sextant,
  store: JobStore,
  solver: Solver,
): (job: Job<JobData>) => Promise<{ solver: string }> {
  const log = sextant.logger.child({ component: 'processor' });

  return async function processJob(job) {
    const { jobId } = job.data;
    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    try {
      const row = await store.job
        .update({ where: { id: jobId }, data: { status: 'running', attempts: { increment: 1 } } })
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
      const final = error instanceof UnrecoverableError || attempt >= maxAttempts;
      const message = error instanceof Error ? error.message : String(error);
      log.warn(
        { job_id: jobId, attempt, final, err: error },
        final ? 'job failed' : 'job attempt failed, will retry',
      );
      await store.job
        .update({ where: { id: jobId }, data: { status: final ? 'failed' : 'queued', error: message } })
        .catch((updateError: unknown) => {
          if (!isMissingRow(updateError))
            log.error({ job_id: jobId, err: updateError }, 'could not record the failure');
        });
      throw error;
    }
  };
}
