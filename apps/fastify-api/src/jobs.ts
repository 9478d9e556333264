import { randomUUID } from 'node:crypto';
import { type Sextant, traced } from '@sextant/core';

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed';

/** Max-cut: split the vertices in two so that as many edges as possible cross the split. */
export interface MaxCutProblem {
  type: 'maxcut';
  edges: Array<[number, number]>;
}

export interface MaxCutResult {
  /** Edges crossing the split. */
  cut_value: number;
  /** The side (0 or 1) of each vertex, by vertex number. */
  partition: number[];
  solver: 'exhaustive';
}

export interface Job {
  id: string;
  type: MaxCutProblem['type'];
  status: JobStatus;
  created_at: string;
  started_at?: string;
  completed_at?: string;
  result?: MaxCutResult;
  error?: string;
}

/** Vertices are numbered 0..MAX_VERTEX; the exhaustive solver tries every split of them. */
export const MAX_VERTEX = 15;
export const MAX_EDGES = 200;
/** Old jobs are forgotten past this many, so memory stays bounded. */
const MAX_JOBS = 10_000;
/** The pause before a queued job starts, standing in for a real queue's latency. */
const QUEUE_DELAY_MS = 10;

export function solveMaxCut(edges: ReadonlyArray<readonly [number, number]>): MaxCutResult {
  let vertices = 0;
  for (const [a, b] of edges) vertices = Math.max(vertices, a + 1, b + 1);
  let best = -1;
  let bestMask = 0;
  // Vertex 0 stays on side 0: the mirror image of a split cuts the same edges.
  const splits = 1 << Math.max(vertices - 1, 0);
  for (let half = 0; half < splits; half++) {
    const mask = half << 1;
    let cut = 0;
    for (const [a, b] of edges) if (((mask >> a) ^ (mask >> b)) & 1) cut++;
    if (cut > best) {
      best = cut;
      bestMask = mask;
    }
  }
  const partition = Array.from({ length: vertices }, (_, vertex) => (bestMask >> vertex) & 1);
  return { cut_value: Math.max(best, 0), partition, solver: 'exhaustive' };
}

/** Jobs kept in memory and solved in process, a moment after they are submitted. */
export interface JobStore {
  submit(problem: MaxCutProblem): Job;
  get(id: string): Job | undefined;
  countByStatus(): Record<JobStatus, number>;
}

export function createJobStore(logger: Sextant['logger']): JobStore {
  const jobs = new Map<string, Job>();

  function run(job: Job, problem: MaxCutProblem): void {
    job.status = 'running';
    job.started_at = new Date().toISOString();
    try {
      job.result = traced('maxcut.solve', (span) => {
        span.setAttribute('maxcut.edges', problem.edges.length);
        return solveMaxCut(problem.edges);
      });
      job.status = 'completed';
    } catch (error) {
      job.status = 'failed';
      job.error = error instanceof Error ? error.message : String(error);
    }
    job.completed_at = new Date().toISOString();
    logger.info({ job_id: job.id, job_status: job.status, cut_value: job.result?.cut_value }, 'job finished');
  }

  return {
    submit(problem) {
      const job: Job = {
        id: randomUUID(),
        type: problem.type,
        status: 'queued',
        created_at: new Date().toISOString(),
      };
      jobs.set(job.id, job);
      if (jobs.size > MAX_JOBS) jobs.delete(jobs.keys().next().value!);
      // unref: a queued job never holds the process open once shutdown has closed the server.
      setTimeout(run, QUEUE_DELAY_MS, job, problem).unref();
      return job;
    },
    get: (id) => jobs.get(id),
    countByStatus() {
      const counts: Record<JobStatus, number> = { queued: 0, running: 0, completed: 0, failed: 0 };
      for (const job of jobs.values()) counts[job.status]++;
      return counts;
    },
  };
}
