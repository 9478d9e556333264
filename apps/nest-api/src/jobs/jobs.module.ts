import { type DynamicModule, Module } from '@nestjs/common';
import { JOB_BACKENDS, type JobBackends } from './job-backends.ts';
import { JobSubmissionPipe } from './job-submission.pipe.ts';
import { JobsController } from './jobs.controller.ts';
import { JobsService } from './jobs.service.ts';
import { SubmissionsGuard } from './submissions.guard.ts';

@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: Nest's dynamic-module idiom, a decorated class with a static factory
export class JobsModule {
  static register(jobs: JobBackends): DynamicModule {
    return {
      module: JobsModule,
      controllers: [JobsController],
      providers: [
        JobsService,
        JobSubmissionPipe,
        SubmissionsGuard,
        { provide: JOB_BACKENDS, useValue: jobs },
      ],
    };
  }
}
