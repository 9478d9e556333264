/** Injection token of the Sextant instance: `@InjectSextant()` or `@Inject(SEXTANT)`. */
export const SEXTANT: unique symbol = Symbol('@sextant/nestjs:sextant');
/** Injection token of Sextant's pino logger (records carry the trace and request ids). */
export const SEXTANT_LOGGER: unique symbol = Symbol('@sextant/nestjs:logger');
/** Injection token of Sextant's metrics (`sextant.metrics`). */
export const SEXTANT_METRICS: unique symbol = Symbol('@sextant/nestjs:metrics');

export const PACKAGE_NAME = '@sextant/nestjs';

/** Reflect-metadata keys this package reads; values are private to it. */
export const NO_TRACE_METADATA = 'sextant:no-trace';
export const HEALTH_CHECK_METADATA = 'sextant:health-check';

/**
 * `@nestjs/platform-fastify`'s `FASTIFY_ROUTE_CONFIG_METADATA` (the key `@RouteConfig()` writes),
 * copied so that this package never imports the platform. `@sextant/fastify` skips a route whose
 * config has `sextant: false`.
 */
export const FASTIFY_ROUTE_CONFIG_METADATA = '__fastify_route_config__';
