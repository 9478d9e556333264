import { setTimeout as sleep } from 'node:timers/promises';
import { createBullMQTelemetry, createRedisHealthCheck } from '@sextant/bullmq';
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
 * does not queue commands while Redis is away (`enableOfflineQueue: false`): `add` fails at once,
 * so an HTTP handler can answer 503 instead of hanging. Registers the `redis` health check
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

/** A repeated connection error is logged again after this long (ioredis retries every second or so). */
const REPEAT_ERROR_LOG_MS = 30_000;

/**
 * BullMQ re-emits its connection's errors; unheard, an `error` event would crash the process.
 * Logged at `warn`: once per distinct message, and again every 30 s while it repeats.
 */
export function reportConnectionErrors(
  sextant: Sextant,
  emitter: { on(event: 'error', listener: (error: Error) => void): unknown },
  what: string,
): void {
  let lastMessage = '';
  let loggedAt = Number.NEGATIVE_INFINITY;
  emitter.on('error', (error) => {
    const now = performance.now();
    if (error.message === lastMessage && now - loggedAt < REPEAT_ERROR_LOG_MS) return;
    lastMessage = error.message;
    loggedAt = now;
    sextant.logger.warn({ err: error }, `${what}: Redis connection error`);
  });
}

/** How long a BullMQ queue or worker may take to close at shutdown. */
export const CLOSE_TIMEOUT_MS = 2000;

/**
 * Closes a BullMQ queue or worker at shutdown without letting a Redis outage hold the process:
 * with Redis away, `close` fails (its QUIT cannot be sent, and ioredis would then go on
 * reconnecting) or never ends, so after a failure or {@link CLOSE_TIMEOUT_MS} the connection is
 * disconnected instead. That disconnect is not awaited: it can wait for an `end` event that a
 * dead connection never emits.
 */
export async function closeRedisClient(
  sextant: Sextant,
  target: { close(): Promise<void>; disconnect(): Promise<void> },
  what: string,
  timeoutMs = CLOSE_TIMEOUT_MS,
): Promise<void> {
  const closed = await Promise.race([
    target.close().then(
      () => true,
      () => false,
    ),
    sleep(timeoutMs, false, { ref: false }),
  ]);
  if (closed) return;
  sextant.logger.warn(
    { timeout_ms: timeoutMs },
    `${what}: Redis connection did not close cleanly, disconnecting`,
  );
  target.disconnect().catch(() => undefined);
}
