import {
  closeRedisClient,
  createBullMQTelemetry,
  createRedisHealthCheck,
  reportConnectionErrors,
} from '@sextant/bullmq';
import type { Sextant } from '@sextant/core';
import { Queue, type QueueOptions } from 'bullmq';
import { DEFAULT_REDIS_URL, JOB_QUEUE_NAME } from './constants.ts';
/** Attempts per job, retried with exponential backoff from {@link RETRY_BACKOFF_MS}. */
export const JOB_ATTEMPTS = 3;
export const RETRY_BACKOFF_MS = 200;

/** What a queued job carries: the row's id only; the problem stays in the database. */
export interface JobData {
  jobId: string;
}

export type JobQueue = Queue<JobData, unknown, string>;

export interface JobQueueOptions {
  /** Default: `REDIS_URL`, else {@link DEFAULT_REDIS_URL}. */
  redisUrl?: string;
  /** BullMQ's key prefix. Default: `SEXTANT_QUEUE_PREFIX`, else BullMQ's `bull`. */
  prefix?: string;
}

export interface ResolvedQueueSettings {
  connection: { url: string };
  prefix?: string;
}

/** The Redis URL and key prefix that a producer and a worker must share. */
export function queueSettings(options: JobQueueOptions = {}): ResolvedQueueSettings {
  const url = options.redisUrl || process.env.REDIS_URL || DEFAULT_REDIS_URL;
  const prefix = options.prefix || process.env.SEXTANT_QUEUE_PREFIX || undefined;
  return prefix === undefined ? { connection: { url } } : { connection: { url }, prefix };
}

/**
 * The producer side of {@link JOB_QUEUE_NAME}: BullMQ's `Queue` with Sextant's telemetry, so a
 * job added inside a request carries the request's trace and id to the worker. Its connection
 * does not queue commands while Redis is away (`enableOfflineQueue: false`): once it has been
 * connected, `add` fails at once. Before the first connection BullMQ holds `add` until Redis
 * answers, which is why `submitJob` gives it a deadline. Registers the `redis` health check
 * (critical) and closes the queue at shutdown.
 */
export function createJobQueue(sextant: Sextant, options: JobQueueOptions = {}): JobQueue {
  const { connection, prefix } = queueSettings(options);
  const queueOptions: QueueOptions = {
    connection: { ...connection, enableOfflineQueue: false },
    telemetry: createBullMQTelemetry(sextant),
    defaultJobOptions: {
      attempts: JOB_ATTEMPTS,
      backoff: { type: 'exponential', delay: RETRY_BACKOFF_MS },
      removeOnComplete: 1000,
      removeOnFail: 5000,
    },
  };
  if (prefix !== undefined) queueOptions.prefix = prefix;
  const queue: JobQueue = new Queue(JOB_QUEUE_NAME, queueOptions);
  reportConnectionErrors(sextant, queue, 'job queue');
  sextant.health.register(createRedisHealthCheck(queue));
  sextant.onShutdown(() => closeRedisClient(sextant, queue, 'job queue'));
  return queue;
}
