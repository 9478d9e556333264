import type { Sextant } from '@sextant/core';

/** Options of the `sextantFastify` plugin. */
export interface SextantFastifyOptions {
  /** The instance from `createSextant()`; it owns every span, metric, log record and endpoint. */
  sextant: Sextant;
  /**
   * Serve Sextant's endpoints (`/metrics`, `/health`, `/health/ready`, `/health/detailed`, under
   * `endpoints.prefix`) as `GET` and `HEAD` routes of the app. Turn off to serve them elsewhere.
   * @default true
   */
  endpoints?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * `false` keeps this route out of Sextant entirely: no span, no request metrics, no access
     * log record, no request id header. Fastify's own behaviour is unchanged.
     * @default true
     */
    sextant?: boolean;
  }
}
