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
import { type JobSubmission, JobSubmissionPipe } from './job-submission.pipe.ts';
import { JobsService } from './jobs.service.ts';
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
  async submit(@Body(JobSubmissionPipe) { problem, options }: JobSubmission): Promise<{ id: string }> {
    return { id: await this.#jobs.submit(problem, options) };
  }

  @Get(':id')
  async find(@Param('id') id: string) {
    const job = await this.#jobs.find(id);
    if (job === undefined) throw new NotFoundException(`no job with id ${JSON.stringify(id)}`);
    return job;
  }
}
