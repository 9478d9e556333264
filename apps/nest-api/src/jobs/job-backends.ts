import type { JobQueue, JobStore } from 'job-store';

/** Injection token of the {@link JobBackends} that `main.ts` opens from the environment. */
export const JOB_BACKENDS = Symbol('JOB_BACKENDS');

/** The job store (`POST /jobs` writes, `GET /jobs/:id` reads) and the queue the worker takes jobs from. */
export interface JobBackends {
  store: JobStore;
  queue: JobQueue;
}
