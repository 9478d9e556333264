import { context, trace } from '@opentelemetry/api';
import { METRICS, type Sextant } from '@sextant/core';
import type { Job, Worker } from 'bullmq';
import { MESSAGING_SYSTEM } from './attributes.ts';
import { AttemptSpan } from './telemetry.ts';

/**
 * What BullMQ's `telemetry` calls do not show, read from the worker's own events: the job wait
 * time (`messaging_job_wait_duration_seconds`, from when the job was ready, i.e. enqueued plus
 * its delay, to the start of its first attempt; once per job, not again when a job the processor
 * moved itself or that stalled comes back) and the class of a failed attempt's error
 * (`error.type`, the exception event). Returns the function that stops observing.
 *
 * A flow's parent is measured from when it was enqueued too, so its wait includes its children's
 * processing: it becomes ready when its last child finishes, a moment BullMQ does not record, and
 * nothing on the parent's job says it had children (only a child carries `parentKey`). Telling
 * parents apart would take a Redis call on every job's first activation, for every job; see the
 * README.
 */
export function observeWorker(sextant: Sextant, worker: Worker): () => void {
  const wait = sextant.metrics
    .histogram(METRICS.messagingJobWaitDuration)
    .child(MESSAGING_SYSTEM, worker.name);

  const onActive = (job: Job) => {
    // attemptsStarted counts every move to active (retries, DelayedError, stalled restarts);
    // attemptsMade only the attempts that failed. A flow parent's readyAt is its enqueue too.
    if (job.attemptsStarted !== 1 || typeof job.processedOn !== 'number') return;
    const readyAt = job.timestamp + (job.opts?.delay ?? 0);
    const seconds = (job.processedOn - readyAt) / 1000;
    if (seconds >= 0) wait.observe(seconds);
  };
  // BullMQ emits `failed` inside the attempt's context, before the attempt's span ends.
  const onFailed = (_job: Job | undefined, error: Error) => {
    const attempt = trace.getSpan(context.active());
    if (attempt instanceof AttemptSpan) attempt.recordFailure(error);
  };
  worker.on('active', onActive);
  worker.on('failed', onFailed);
  return () => {
    worker.off('active', onActive);
    worker.off('failed', onFailed);
  };
}
