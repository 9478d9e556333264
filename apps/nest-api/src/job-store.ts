import { randomUUID } from 'node:crypto';
import type { Sextant } from '@sextant/core';
import type { MaxCutProblem } from './problem.ts';
import { type MaxCutResult, solveMaxCut } from './solver.ts';

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed';

export interface Job {
  id: string;
  type: MaxCutProblem['type'];
  status: JobStatus;
  created_at: string;
  updated_at: string;
  result?: MaxCutResult;
  error?: string;
}

export interface JobRecord extends Job {
  /** When each status was reached. */
  timeline: Array<{ status: JobStatus; at: string }>;
}

/** A job as `GET /jobs/:id` answers it. */
export function jobView({ timeline: _timeline, ...job }: JobRecord): Job {
  return job;
}

export interface JobStore {
  submit(problem: MaxCutProblem): JobRecord;
  get(id: string): JobRecord | undefined;
  countByStatus(): Record<JobStatus, number>;
}

/** How long a job waits in the queue before the in-process worker takes it. */
const QUEUE_DELAY_MS = 10;

/**
 * Jobs kept in memory and solved in process, a stand-in for the queue and worker of the real
 * deployment. Timers are unref'd: a job still queued at shutdown must not keep the process up.
 */
export function createJobStore(logger: Sextant['logger']): JobStore {
  const jobs = new Map<string, JobRecord>();

  function move(job: JobRecord, status: JobStatus): void {
    const at = new Date().toISOString();
    job.status = status;
    job.updated_at = at;
    job.timeline.push({ status, at });
  }

  function run(job: JobRecord, problem: MaxCutProblem): void {
    move(job, 'running');
    try {
      job.result = solveMaxCut(problem);
      move(job, 'completed');
      logger.info({ job_id: job.id, cut_value: job.result.cut_value }, 'job completed');
    } catch (error) {
      job.error = error instanceof Error ? error.message : String(error);
      move(job, 'failed');
      logger.error({ job_id: job.id, err: error }, 'job failed');
    }
  }

  return {
    submit(problem) {
      const now = new Date().toISOString();
      const job: JobRecord = {
        id: randomUUID(),
        type: problem.type,
        status: 'queued',
        created_at: now,
        updated_at: now,
        timeline: [{ status: 'queued', at: now }],
      };
      jobs.set(job.id, job);
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
