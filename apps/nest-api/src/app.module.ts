import { type DynamicModule, Module } from '@nestjs/common';
import type { Sextant } from '@sextant/core';
import { SextantModule } from '@sextant/nestjs';
import { DiagnosticsController } from './diagnostics/diagnostics.controller.ts';
import { SlowDelayPipe } from './diagnostics/slow-delay.pipe.ts';
import { JobsModule } from './jobs/jobs.module.ts';

@Module({
  imports: [JobsModule],
  controllers: [DiagnosticsController],
  providers: [SlowDelayPipe],
})
// biome-ignore lint/complexity/noStaticOnlyClass: Nest's dynamic-module idiom, a decorated class with a static factory
export class AppModule {
  /** The Sextant instance comes from `main.ts`, which also needs it before Nest starts (logger, shutdown). */
  static register(sextant: Sextant): DynamicModule {
    return { module: AppModule, imports: [SextantModule.forRoot({ sextant })] };
  }
}
