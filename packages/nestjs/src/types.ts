import type { HealthCheck, Sextant, SextantOptions } from '@sextant/core';

/** Options of `SextantModule.forRoot()` / `forRootAsync()`, validated once when the module starts. */
export interface SextantModuleOptions {
  /**
   * The instance from `createSextant()`. Pass it when `main.ts` needs it before Nest starts
   * (shutdown hooks, the Nest logger); otherwise the module creates one from `config`.
   */
  sextant?: Sextant;
  /** Options for `createSextant()` when `sextant` is not given (the environment still overrides them). */
  config?: SextantOptions;
  /**
   * Serve `/metrics`, `/health`, `/health/ready` and `/health/detailed` (under core's
   * `endpoints.prefix`) on the underlying platform, ahead of Nest's routing: guards, the global
   * prefix and versioning do not apply to them. Default `true`.
   */
  endpoints?: boolean;
  /**
   * Register a global exception filter that records every exception on the request's span and
   * logs it once, then answers exactly as Nest's default filter does. Nest tries it after every
   * filter of the application, which keep answering what they catch. `false` registers none.
   * Default `true`.
   */
  recordExceptions?: boolean;
  /** Health checks to register next to the built-in ones (providers marked `@HealthIndicator()` are found as well). */
  healthChecks?: HealthCheck[];
}

/** A provider whose checks readiness and the detailed report run: mark its class with `@HealthIndicator()`. */
export interface SextantHealthIndicator {
  /**
   * Checks one dependency: return `up()` / `down(reason)` from `@sextant/core` (or nothing for
   * up); a throw or rejection counts as down. Abort the client call when `signal` aborts.
   */
  check: HealthCheck['check'];
}

/** Options of `@HealthIndicator()`: the check's name, criticality and timeout, as core's `HealthCheck`. */
export interface HealthIndicatorOptions {
  /** Unique; 1 to 64 characters of `a-z`, `0-9`, `_`, `.`, `-`. */
  name: string;
  /** A failing critical check makes readiness answer 503. Default `true`. */
  critical?: boolean;
  /** Default `health.checkTimeoutMs` (500 ms). */
  timeoutMs?: number;
}
