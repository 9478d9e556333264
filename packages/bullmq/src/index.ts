// @sextant/bullmq: the public API is exactly what this file names.

export { ATTR, OUTCOMES } from './attributes.ts';
export type { JobOutcome } from './attributes.ts';
export { CLOSE_TIMEOUT_MS, closeRedisClient, reportConnectionErrors } from './connection.ts';
export { createRedisHealthCheck } from './health.ts';
export { observeQueueDepth } from './queue-depth.ts';
export type { JobWithContext, SextantBullMQTelemetry } from './telemetry.ts';
export { createBullMQTelemetry, runInJobContext } from './telemetry.ts';
export type {
  ProducerRelation,
  SextantBullMQOptions,
  SextantBullMQQueueOptions,
  SextantQueueDepthOptions,
  SextantRedisHealthCheckOptions,
} from './types.ts';
export { observeWorker } from './worker.ts';
