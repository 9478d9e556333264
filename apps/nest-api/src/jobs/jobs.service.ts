import { Inject, Injectable, ServiceUnavailableException } from '@nestjs/common';
import { Traced } from '@sextant/nestjs';
import type { Problem } from 'job-store';
import { findJob, type JobOptions, JobsUnavailableError, type JobView, submitJob } from 'job-store';
import { JOB_BACKENDS, type JobBackends } from './job-backends.ts';

/** The store or the queue is away: 503, the client may retry. */
function unavailable(error: unknown): never {
  if (error instanceof JobsUnavailableError) throw new ServiceUnavailableException(error.message);
  throw error;
}

/** Jobs stored through Prisma and enqueued on BullMQ for the worker. */
@Injectable()
export class JobsService {
  readonly #jobs: JobBackends;

  constructor(@Inject(JOB_BACKENDS) jobs: JobBackends) {
    this.#jobs = jobs;
  }

  /** A child span of the request's: `JobsService.submit`, with the insert and the publish inside it. */
  @Traced()
  submit(problem: Problem, options: JobOptions): Promise<string> {
    return submitJob(this.#jobs.store, this.#jobs.queue, problem, options).catch(unavailable);
  }

  @Traced()
  find(id: string): Promise<JobView | undefined> {
    return findJob(this.#jobs.store, id).catch(unavailable);
  }
}
