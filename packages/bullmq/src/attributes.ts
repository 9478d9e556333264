import {
  ATTR_MESSAGING_BATCH_MESSAGE_COUNT,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
} from '@sextant/core';

/**
 * Span attribute keys. The messaging keys are incubating in the OpenTelemetry semantic
 * conventions; core keeps the one copy of them.
 */
export const ATTR = Object.freeze({
  MESSAGING_SYSTEM: ATTR_MESSAGING_SYSTEM,
  MESSAGING_DESTINATION_NAME: ATTR_MESSAGING_DESTINATION_NAME,
  MESSAGING_OPERATION_NAME: ATTR_MESSAGING_OPERATION_NAME,
  MESSAGING_OPERATION_TYPE: ATTR_MESSAGING_OPERATION_TYPE,
  MESSAGING_MESSAGE_ID: ATTR_MESSAGING_MESSAGE_ID,
  MESSAGING_BATCH_MESSAGE_COUNT: ATTR_MESSAGING_BATCH_MESSAGE_COUNT,
  /** Beside BullMQ's own `bullmq.*` keys, which are kept as BullMQ sets them. */
  JOB_OUTCOME: 'bullmq.job.outcome',
  ERROR_TYPE: 'error.type',
});

/** The keys BullMQ sets on its spans (its `TelemetryAttributes`), read to fill the ones above. */
export const BULLMQ_ATTR = Object.freeze({
  QUEUE_NAME: 'bullmq.queue.name',
  JOB_ID: 'bullmq.job.id',
  JOB_FAILED_REASON: 'bullmq.job.failed.reason',
  BULK_COUNT: 'bullmq.job.bulk.count',
});

export const MESSAGING_SYSTEM = 'bullmq';
/** error.type when the failure's class is unknown (the semantic conventions' fallback value). */
export const ERROR_TYPE_OTHER = '_OTHER';

/** Values of `bullmq.job.outcome` and of the `outcome` label. */
export const OUTCOMES = Object.freeze({
  COMPLETED: 'completed',
  /** Failed, and BullMQ will run it again (at once or after a backoff delay). */
  RETRIED: 'retried',
  /** Failed for the last time. */
  FAILED: 'failed',
  /**
   * Neither: the processor moved the job itself (DelayedError, WaitingChildrenError), a rate limit,
   * the worker closed, or the attempt lost its lock (BullMQ could not settle it; another attempt
   * may have completed the job).
   */
  OTHER: 'other',
});

export type JobOutcome = (typeof OUTCOMES)[keyof typeof OUTCOMES];
