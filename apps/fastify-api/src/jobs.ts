import type { JobQueue, JobStore } from 'job-store';

/** The job store (`POST /jobs` writes, `GET /jobs/:id` reads) and the queue the worker takes jobs from. */
export interface JobBackends {
  store: JobStore;
  queue: JobQueue;
}
