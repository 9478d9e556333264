import { Injectable } from '@nestjs/common';
import type { Sextant } from '@sextant/core';
import { InjectLogger, Traced } from '@sextant/nestjs';
import { createJobStore, type Job, type JobRecord, type JobStore, jobView } from '../job-store.ts';
import type { MaxCutProblem } from '../problem.ts';

/** Jobs kept in memory and solved in process: the stand-in for the queue and worker of a real deployment. */
@Injectable()
export class JobsService {
  readonly #store: JobStore;

  constructor(@InjectLogger() logger: Sextant['logger']) {
    this.#store = createJobStore(logger);
  }

  /** A child span of the request's: `JobsService.submit`. */
  @Traced()
  submit(problem: MaxCutProblem): JobRecord {
    return this.#store.submit(problem);
  }

  @Traced()
  find(id: string): Job | undefined {
    const job = this.#store.get(id);
    return job === undefined ? undefined : jobView(job);
  }
}
