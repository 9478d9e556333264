import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';
import { type JobOptions, validateJobOptions } from 'job-store';
import { type MaxCutProblem, validateProblem } from '../problem.ts';

/** A validated `POST /jobs` body: the problem, and the demo options (delay, failed attempts). */
export interface JobSubmission {
  problem: MaxCutProblem;
  options: JobOptions;
}

/** Validates `POST /jobs` bodies: 400 with a message saying exactly what is wrong. */
@Injectable()
export class MaxCutProblemPipe implements PipeTransform<unknown, JobSubmission> {
  transform(body: unknown): JobSubmission {
    const validation = validateProblem(body);
    if (!validation.ok) throw new BadRequestException(validation.message);
    const options = validateJobOptions((body as { options?: unknown }).options);
    if (!options.ok) throw new BadRequestException(options.message);
    return { problem: validation.problem, options: options.options };
  }
}
