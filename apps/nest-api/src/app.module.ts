import { type DynamicModule, Module } from '@nestjs/common';
import type { Sextant } from '@sextant/core';
import { SextantModule } from '@sextant/nestjs';
import { DiagnosticsController } from './diagnostics/diagnostics.controller.ts';
import { SlowDelayPipe } from './diagnostics/slow-delay.pipe.ts';
import type { JobBackends } from './jobs/job-backends.ts';
import { JobsModule } from './jobs/jobs.module.ts';

@Module({
  controllers: [DiagnosticsController],
  providers: [SlowDelayPipe],
})
// biome-ignore lint/complexity/noStaticOnlyClass: Nest's dynamic-module idiom, a decorated class with a static factory
export class AppModule {
  /**
   * The Sextant instance comes from `main.ts`, which also needs it before Nest starts (logger,
   * shutdown); so do the job backends, opened from the environment before the module is built.
   */
  static register(sextant: Sextant, jobs: JobBackends): DynamicModule {
    return { module: AppModule, imports: [SextantModule.forRoot({ sextant }), JobsModule.register(jobs)] };
  }
}
