import { Module } from '@nestjs/common';
import { JobsController } from './jobs.controller.ts';
import { JobsService } from './jobs.service.ts';
import { MaxCutProblemPipe } from './max-cut-problem.pipe.ts';
import { SubmissionsGuard } from './submissions.guard.ts';

@Module({
  controllers: [JobsController],
  providers: [JobsService, MaxCutProblemPipe, SubmissionsGuard],
})
export class JobsModule {}
