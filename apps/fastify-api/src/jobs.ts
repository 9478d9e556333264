import type { JobQueue, JobStore } from 'job-store';

/** Max-cut: split the vertices in two so that as many edges as possible cross the split. */
export interface MaxCutProblem {
  type: 'maxcut';
  edges: Array<[number, number]>;
}

/** Vertices are numbered 0..MAX_VERTEX. */
export const MAX_VERTEX = 15;
export const MAX_EDGES = 200;

/** The job store (`POST /jobs` writes, `GET /jobs/:id` reads) and the queue the worker takes jobs from. */
export interface JobBackends {
  store: JobStore;
  queue: JobQueue;
}
