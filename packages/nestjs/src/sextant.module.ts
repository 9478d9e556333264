import {
  type BeforeApplicationShutdown,
  Inject,
  Module,
  type OnApplicationShutdown,
  type OnModuleInit,
  type Provider,
} from '@nestjs/common';
import { APP_FILTER, DiscoveryModule, DiscoveryService, HttpAdapterHost } from '@nestjs/core';
import type { HealthCheck, Sextant } from '@sextant/core';
import { HEALTH_CHECK_METADATA, SEXTANT, SEXTANT_LOGGER, SEXTANT_METRICS } from './constants.ts';
import { SextantExceptionFilter } from './exception.filter.ts';
import { type ResolvedModuleOptions, resolveModuleOptions } from './options.ts';
import { instrumentPlatform } from './platform.ts';
import { SEXTANT_MODULE_OPTIONS, SextantConfigurableModule } from './sextant.module-definition.ts';
import type { HealthIndicatorOptions, SextantHealthIndicator, SextantModuleOptions } from './types.ts';

const RESOLVED_OPTIONS = Symbol('@sextant/nestjs:resolved-options');
const PLATFORM = Symbol('@sextant/nestjs:platform');

const providers: Provider[] = [
  {
    provide: RESOLVED_OPTIONS,
    useFactory: (options: SextantModuleOptions) => resolveModuleOptions(options),
    inject: [SEXTANT_MODULE_OPTIONS],
  },
  {
    provide: SEXTANT,
    useFactory: (options: ResolvedModuleOptions) => options.sextant,
    inject: [RESOLVED_OPTIONS],
  },
  { provide: SEXTANT_LOGGER, useFactory: (sextant: Sextant) => sextant.logger, inject: [SEXTANT] },
  { provide: SEXTANT_METRICS, useFactory: (sextant: Sextant) => sextant.metrics, inject: [SEXTANT] },
  {
    // Created with the other providers, before `app.init()` mounts body parsers and routes.
    provide: PLATFORM,
    useFactory: (options: ResolvedModuleOptions, adapterHost: HttpAdapterHost | undefined) =>
      instrumentPlatform(adapterHost, options.sextant, options.endpoints),
    inject: [RESOLVED_OPTIONS, { token: HttpAdapterHost, optional: true }],
  },
  {
    provide: APP_FILTER,
    useFactory: (options: ResolvedModuleOptions, adapterHost: HttpAdapterHost | undefined) =>
      new SextantExceptionFilter(options.sextant, adapterHost, options.recordExceptions),
    inject: [RESOLVED_OPTIONS, { token: HttpAdapterHost, optional: true }],
  },
];

/**
 * Sextant for a Nest application, on Express or Fastify: `SextantModule.forRoot({ sextant })` or
 * `forRootAsync({ useFactory, inject })` in the root module. Global unless `isGlobal: false`.
 */
export class SextantModule
  extends SextantConfigurableModule
  implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown
{
  readonly #options: ResolvedModuleOptions;
  readonly #discovery: DiscoveryService;
  readonly #unregister: Array<() => void> = [];

  constructor(options: ResolvedModuleOptions, discovery: DiscoveryService) {
    super();
    this.#options = options;
    this.#discovery = discovery;
  }

  onModuleInit(): void {
    const { sextant, healthChecks } = this.#options;
    for (const check of healthChecks) this.#unregister.push(sextant.health.register(check));
    for (const wrapper of this.#discovery.getProviders()) {
      const { metatype, instance } = wrapper;
      if (typeof metatype !== 'function' || instance === null || typeof instance !== 'object') continue;
      const meta = Reflect.getMetadata(HEALTH_CHECK_METADATA, metatype) as HealthIndicatorOptions | undefined;
      if (meta === undefined) continue;
      const indicator = instance as SextantHealthIndicator;
      const check: HealthCheck = { ...meta, check: (signal) => indicator.check(signal) };
      this.#unregister.push(sextant.health.register(check));
    }
  }

  /**
   * Nest closes the HTTP server right after this hook. When the module created the instance, its
   * shutdown runs here, while the server still answers: readiness says 503 while in-flight requests
   * finish, instead of the probe finding the port closed.
   */
  async beforeApplicationShutdown(): Promise<void> {
    const { sextant, ownsSextant } = this.#options;
    // When Sextant's own shutdown closes the app, it is already under way: waiting for it here
    // would wait for this very hook.
    if (ownsSextant && !sextant.health.shuttingDown) await sextant.shutdown();
  }

  /** Last, so the module's health checks answer for as long as the server does. */
  onApplicationShutdown(): void {
    for (const unregister of this.#unregister.splice(0)) unregister();
  }
}
Module({
  imports: [DiscoveryModule],
  providers,
  exports: [SEXTANT, SEXTANT_LOGGER, SEXTANT_METRICS],
})(SextantModule);
Inject(RESOLVED_OPTIONS)(SextantModule, undefined, 0);
Inject(DiscoveryService)(SextantModule, undefined, 1);
