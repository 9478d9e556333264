import { createSextant, ERROR_CODES, type Sextant, SextantConfigError } from '@sextant/core';
import { PACKAGE_NAME } from './constants.ts';
import type { SextantModuleOptions } from './types.ts';

export interface ResolvedModuleOptions {
  readonly sextant: Sextant;
  /** The module created the instance, so it also shuts it down with the application. */
  readonly ownsSextant: boolean;
  readonly endpoints: boolean;
  readonly recordExceptions: boolean;
  readonly healthChecks: NonNullable<SextantModuleOptions['healthChecks']>;
}

const KNOWN_OPTIONS: ReadonlySet<string> = new Set([
  'sextant',
  'config',
  'endpoints',
  'recordExceptions',
  'healthChecks',
  // Added by ConfigurableModuleBuilder's extras.
  'isGlobal',
]);

function fail(message: string): never {
  throw new SextantConfigError(ERROR_CODES.INVALID_OPTION, message, PACKAGE_NAME);
}

function isSextant(value: unknown): value is Sextant {
  const candidate = value as Partial<Sextant> | null;
  return typeof candidate === 'object' && candidate !== null && typeof candidate.http?.begin === 'function';
}

export function resolveModuleOptions(options: SextantModuleOptions | undefined): ResolvedModuleOptions {
  const given = options ?? {};
  if (typeof given !== 'object' || Array.isArray(given)) fail('SextantModule options must be an object');
  for (const key of Object.keys(given)) {
    if (!KNOWN_OPTIONS.has(key)) {
      fail(`unknown option ${JSON.stringify(key)}; known options: ${[...KNOWN_OPTIONS].join(', ')}`);
    }
  }
  const { sextant, config, endpoints = true, recordExceptions = true, healthChecks = [] } = given;
  if (sextant !== undefined && !isSextant(sextant)) {
    fail('sextant must be the instance returned by createSextant() from @sextant/core');
  }
  if (sextant !== undefined && config !== undefined) {
    fail('give either sextant (an instance) or config (options to create one), not both');
  }
  if (typeof endpoints !== 'boolean') fail('endpoints must be a boolean');
  if (typeof recordExceptions !== 'boolean') fail('recordExceptions must be a boolean');
  if (!Array.isArray(healthChecks)) fail('healthChecks must be an array of HealthCheck objects');
  return Object.freeze({
    sextant: sextant ?? createSextant(config),
    ownsSextant: sextant === undefined,
    endpoints,
    recordExceptions,
    healthChecks,
  });
}
