import {
  Body,
  Controller,
  Get,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
  UseGuards,
} from '@nestjs/common';
import type { MaxCutProblem } from '../problem.ts';
import { JobsService } from './jobs.service.ts';
import { MaxCutProblemPipe } from './max-cut-problem.pipe.ts';
import { SubmissionsGuard } from './submissions.guard.ts';

@Controller('jobs')
export class JobsController {
  readonly #jobs: JobsService;

  constructor(@Inject(JobsService) jobs: JobsService) {
    this.#jobs = jobs;
  }

  @Post()
  @HttpCode(202)
  @UseGuards(SubmissionsGuard)
  submit(@Body(MaxCutProblemPipe) problem: MaxCutProblem): { id: string } {
    return { id: this.#jobs.submit(problem).id };
  }

  @Get(':id')
  find(@Param('id') id: string) {
    const job = this.#jobs.find(id);
    if (job === undefined) throw new NotFoundException(`no job with id ${JSON.stringify(id)}`);
    return job;
  }
}
