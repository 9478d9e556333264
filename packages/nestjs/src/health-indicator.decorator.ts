import { SetMetadata } from '@nestjs/common';
import { HEALTH_CHECK_METADATA } from './constants.ts';
import type { HealthIndicatorOptions } from './types.ts';

/**
 * Marks a provider implementing `SextantHealthIndicator` as a health check: the module finds it
 * (through Nest's DiscoveryService) and registers its `check` with Sextant's health, next to
 * the built-in checks. The provider still needs to be in some module's `providers`.
 */
export function HealthIndicator(options: HealthIndicatorOptions): ClassDecorator {
  return SetMetadata(HEALTH_CHECK_METADATA, Object.freeze({ ...options }));
}
