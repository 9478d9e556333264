import {
  type BeforeApplicationShutdown,
  Inject,
  Module,
  type OnApplicationShutdown,
  type OnModuleInit,
  type Provider,
} from '@nestjs/common';
import { ApplicationConfig, DiscoveryModule, DiscoveryService, HttpAdapterHost } from '@nestjs/core';
import { ERROR_CODES, type HealthCheck, type Sextant, SextantConfigError } from '@sextant/core';
import {
  HEALTH_CHECK_METADATA,
  PACKAGE_NAME,
  SEXTANT,
  SEXTANT_LOGGER,
  SEXTANT_METRICS,
} from './constants.ts';
import { SextantExceptionFilter } from './exception.filter.ts';
import { type ResolvedModuleOptions, resolveModuleOptions } from './options.ts';
import { instrumentPlatform } from './platform.ts';
import { SEXTANT_MODULE_OPTIONS, SextantConfigurableModule } from './sextant.module-definition.ts';
import type { HealthIndicatorOptions, SextantHealthIndicator, SextantModuleOptions } from './types.ts';

const RESOLVED_OPTIONS = Symbol('@sextant/nestjs:resolved-options');
const PLATFORM = Symbol('@sextant/nestjs:platform');
const EXCEPTION_FILTER = Symbol('@sextant/nestjs:exception-filter');

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
    useFactory: (
      options: ResolvedModuleOptions,
      adapterHost: HttpAdapterHost | undefined,
      config: ApplicationConfig,
    ) => instrumentPlatform(adapterHost, options.sextant, options.endpoints, config),
    inject: [RESOLVED_OPTIONS, { token: HttpAdapterHost, optional: true }, ApplicationConfig],
  },
  {
    // Not an APP_FILTER: Nest tries global filters from the last registered to the first, and
    // APP_FILTER providers are registered in module-scan order from the root module, so ours, a
    // catch-all, would come before every filter of the application. Put first in the list, it is
    // the last one tried: the application's filters (APP_FILTER or `useGlobalFilters()`) answer
    // what they catch, and ours answers the rest, as Nest's default handling would.
    provide: EXCEPTION_FILTER,
    useFactory: (
      options: ResolvedModuleOptions,
      adapterHost: HttpAdapterHost | undefined,
      config: ApplicationConfig,
    ) => {
      if (!options.recordExceptions) return null;
      const filter = new SextantExceptionFilter(options.sextant, adapterHost);
      config.getGlobalFilters().unshift(filter);
      return filter;
    },
    inject: [RESOLVED_OPTIONS, { token: HttpAdapterHost, optional: true }, ApplicationConfig],
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
    // Every indicator is checked before any check is registered: a refused one stops start-up
    // with nothing left registered.
    const checks: HealthCheck[] = [...healthChecks];
    for (const wrapper of this.#discovery.getProviders()) {
      const { metatype } = wrapper;
      if (typeof metatype !== 'function') continue;
      const meta = Reflect.getMetadata(HEALTH_CHECK_METADATA, metatype) as HealthIndicatorOptions | undefined;
      if (meta === undefined) continue;
      // Nest builds a request-scoped or transient provider (or one that depends on such a
      // provider) per request or per consumer; what discovery holds for it is a stand-in whose
      // constructor never ran, so its check would fail on every probe.
      if (!wrapper.isDependencyTreeStatic() || wrapper.isTransient) {
        throw new SextantConfigError(
          ERROR_CODES.INVALID_HEALTH_CHECK,
          `@HealthIndicator() provider ${metatype.name || String(wrapper.token)} is request-scoped or transient, ` +
            'or depends on a request-scoped provider: health indicators must be singletons (the default scope) ' +
            'with singleton dependencies',
          PACKAGE_NAME,
        );
      }
      const instance: unknown = wrapper.instance;
      if (instance === null || typeof instance !== 'object') continue;
      const indicator = instance as SextantHealthIndicator;
      checks.push({ ...meta, check: (signal) => indicator.check(signal) });
    }
    for (const check of checks) this.#unregister.push(sextant.health.register(check));
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
