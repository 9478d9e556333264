// @sextant/nestjs: the public API is exactly what this file names.

// Module and injection
export { SEXTANT, SEXTANT_LOGGER, SEXTANT_METRICS } from './constants.ts';
// Exceptions and Nest's logger
export { SextantExceptionFilter } from './exception.filter.ts';
// Health
export { HealthIndicator } from './health-indicator.decorator.ts';
export { InjectLogger, InjectMetrics, InjectSextant } from './inject.decorator.ts';
export { SextantLogger } from './logger.service.ts';
// Decorators
export { NoTrace } from './no-trace.decorator.ts';
export { SextantModule } from './sextant.module.ts';
export type { TracedOptions } from './traced.decorator.ts';
export { Traced } from './traced.decorator.ts';
export type { HealthIndicatorOptions, SextantHealthIndicator, SextantModuleOptions } from './types.ts';
