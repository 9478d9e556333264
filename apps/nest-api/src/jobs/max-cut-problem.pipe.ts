import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';
import { type MaxCutProblem, validateProblem } from '../problem.ts';

/** Validates `POST /jobs` bodies: 400 with a message saying exactly what is wrong. */
@Injectable()
export class MaxCutProblemPipe implements PipeTransform<unknown, MaxCutProblem> {
  transform(body: unknown): MaxCutProblem {
    const validation = validateProblem(body);
    if (!validation.ok) throw new BadRequestException(validation.message);
    return validation.problem;
  }
}
