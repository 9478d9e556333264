import { ERROR_CODES, type Sextant, SextantConfigError } from '@sextant/core';
import type { SextantExpressOptions } from './types.ts';

export const PACKAGE_NAME = '@sextant/express';

/** Coded warnings this package emits, once each. */
export const WARNING_CODES = Object.freeze({
  ROUTE_UNPLACED: 'SEXTANT_EXPRESS_ROUTE_UNPLACED',
});

export interface ResolvedExpressOptions {
  readonly ignore: SextantExpressOptions['ignore'];
}

const DEFAULT_OPTIONS: ResolvedExpressOptions = Object.freeze({ ignore: undefined });
const KNOWN_OPTIONS: ReadonlySet<string> = new Set(Object.keys(DEFAULT_OPTIONS));

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value).slice(0, 60)}`;
}

function fail(message: string): never {
  throw new SextantConfigError(ERROR_CODES.INVALID_OPTION, message, PACKAGE_NAME);
}

export function assertSextant(value: unknown, factory: string): asserts value is Sextant {
  const candidate = value as Partial<Sextant> | null | undefined;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    typeof candidate.http?.begin !== 'function' ||
    typeof candidate.endpoints?.match !== 'function'
  ) {
    fail(
      `${factory}() expects the instance returned by createSextant() from @sextant/core, got ${describe(value)}`,
    );
  }
}

export function resolveOptions(options: SextantExpressOptions | undefined): ResolvedExpressOptions {
  if (options === undefined) return DEFAULT_OPTIONS;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    fail(`options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      fail(`unknown option ${JSON.stringify(key)}; known options: ${[...KNOWN_OPTIONS].join(', ')}`);
    }
  }
  const { ignore } = options;
  if (ignore !== undefined && typeof ignore !== 'function') {
    fail(`ignore must be a function (req) => boolean, got ${describe(ignore)}`);
  }
  return Object.freeze({ ...DEFAULT_OPTIONS, ...options });
}
