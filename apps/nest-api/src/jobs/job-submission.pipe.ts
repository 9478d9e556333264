import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';
import { type JobOptions, type Problem, validateJobOptions, validateProblem } from 'job-store';

/** A validated `POST /jobs` body: the problem, and the demo options (delay, failed attempts). */
export interface JobSubmission {
  problem: Problem;
  options: JobOptions;
}

/**
 * Validates `POST /jobs` bodies with the worker's own rules (job-store's `validateProblem`), so a 202 is a job
 * the worker can solve: 400 (Nest's `{ statusCode, error, message }`) with a message saying what
 * is wrong and what is allowed.
 */
@Injectable()
export class JobSubmissionPipe implements PipeTransform<unknown, JobSubmission> {
  transform(body: unknown): JobSubmission {
    const validation = validateProblem(body);
    if (!validation.ok) throw new BadRequestException(validation.message);
    const options = validateJobOptions((body as { options?: unknown }).options);
    if (!options.ok) throw new BadRequestException(options.message);
    return { problem: validation.problem, options: options.options };
  }
}
