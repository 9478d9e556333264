// job-store: what the HTTP sample apps and the worker share.

export type { MaxCutProblem, Problem, ProblemType, ProblemValidation, QuboProblem } from './problem.ts';
export { MAX_COEFFICIENT, MAX_EDGES, MAX_VARIABLES, problemSize, validateProblem } from './problem.ts';
export {
  isStoreUnavailable,
  jobStoreReachable,
  storeErrorReason,
  STORE_PROBE_TIMEOUT_MS,
} from './availability.ts';
export type { JobOptions, JobView, OptionsValidation, SubmittedProblem } from './jobs.ts';
export {
  countJobsByStatus,
  ENQUEUE_TIMEOUT_MS,
  findJob,
  JobsUnavailableError,
  MAX_DELAY_MS,
  submitJob,
  validateJobOptions,
} from './jobs.ts';
export type { Environment } from './env.ts';
export { envSetting } from './env.ts';
export { DEFAULT_PORT, portFromEnv } from './port.ts';
export type { JobData, JobQueue, JobQueueOptions, ResolvedQueueSettings } from './queue.ts';
export { DEFAULT_REDIS_URL, JOB_QUEUE_NAME } from './constants.ts';
export { createJobQueue, JOB_ATTEMPTS, queueSettings, RETRY_BACKOFF_MS } from './queue.ts';
export type { JobStatus, JobStore, JobStoreOptions } from './store.ts';
export { createJobStore, DEFAULT_SQLITE_FILE, JOB_STATUSES } from './store.ts';
