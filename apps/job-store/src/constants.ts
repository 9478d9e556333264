// Free of imports, so test setup can read them without the workspace's source conditions.

/** The queue between the HTTP apps and the worker. */
export const JOB_QUEUE_NAME = 'quantum-jobs';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
