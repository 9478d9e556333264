import { ERROR_CODES, type Sextant, SextantConfigError } from '@sextant/core';
import type { SextantPrismaOptions } from './types.ts';

export const PACKAGE_NAME = '@sextant/prisma';
export const SLOW_QUERY_ENV = 'SEXTANT_PRISMA_SLOW_QUERY_MS';
/** Largest threshold accepted: one hour. */
const MAX_SLOW_QUERY_MS = 3_600_000;

export interface ResolvedPrismaOptions {
  readonly includeArgs: boolean;
  /** Infinity when the slow-query log is off. */
  readonly slowQueryMs: number;
  readonly dbSystemName: string | undefined;
  readonly spans: boolean;
}

const DEFAULT_OPTIONS: ResolvedPrismaOptions = Object.freeze({
  includeArgs: false,
  slowQueryMs: 500,
  dbSystemName: undefined,
  spans: true,
});
const KNOWN_OPTIONS: ReadonlySet<string> = new Set(['includeArgs', 'slowQueryMs', 'dbSystemName', 'spans']);

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value).slice(0, 60)}`;
}

export function fail(message: string, code: string = ERROR_CODES.INVALID_OPTION): never {
  throw new SextantConfigError(code, message, PACKAGE_NAME);
}

export function assertSextant(value: unknown, factory: string): asserts value is Sextant {
  const candidate = value as Partial<Sextant> | null | undefined;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    typeof candidate.tracer?.startSpan !== 'function' ||
    typeof candidate.metrics?.histogram !== 'function' ||
    typeof candidate.errors?.report !== 'function'
  ) {
    fail(
      `${factory}() expects the instance returned by createSextant() from @sextant/core, got ${describeValue(value)}`,
    );
  }
}

function isValidThreshold(value: number): boolean {
  return Number.isFinite(value) && value >= 0 && value <= MAX_SLOW_QUERY_MS;
}

function slowQueryFromEnv(readEnv: (name: string) => string | undefined): number | undefined {
  const raw = readEnv(SLOW_QUERY_ENV);
  if (raw === undefined || raw.trim() === '') return undefined;
  const text = raw.trim();
  if (text.toLowerCase() === 'off') return Number.POSITIVE_INFINITY;
  const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!isValidThreshold(value)) {
    fail(
      `${SLOW_QUERY_ENV}=${JSON.stringify(raw.slice(0, 60))} is invalid: expected milliseconds from 0 to ${MAX_SLOW_QUERY_MS}, or "off"`,
      ERROR_CODES.INVALID_ENV,
    );
  }
  return value;
}

/** Merges options over the defaults, then the environment over both; throws a coded error for anything invalid. */
export function resolveOptions(
  options: SextantPrismaOptions | undefined,
  readEnv: (name: string) => string | undefined = (name) => process.env[name],
): ResolvedPrismaOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    fail(`options must be an object, got ${describeValue(options)}`);
  }
  const given = options ?? {};
  for (const key of Object.keys(given)) {
    if (!KNOWN_OPTIONS.has(key)) {
      fail(`unknown option ${JSON.stringify(key)}; known options: ${[...KNOWN_OPTIONS].join(', ')}`);
    }
  }
  const { includeArgs, slowQueryMs, dbSystemName, spans } = given;
  if (includeArgs !== undefined && typeof includeArgs !== 'boolean') {
    fail(`includeArgs must be a boolean, got ${describeValue(includeArgs)}`);
  }
  if (spans !== undefined && typeof spans !== 'boolean') {
    fail(`spans must be a boolean, got ${describeValue(spans)}`);
  }
  if (
    slowQueryMs !== undefined &&
    slowQueryMs !== false &&
    (typeof slowQueryMs !== 'number' || !isValidThreshold(slowQueryMs))
  ) {
    fail(
      `slowQueryMs must be milliseconds from 0 to ${MAX_SLOW_QUERY_MS}, or false to turn the slow-query log off, got ${describeValue(slowQueryMs)}`,
    );
  }
  if (
    dbSystemName !== undefined &&
    (typeof dbSystemName !== 'string' || !/^[a-z][a-z0-9_.]{0,63}$/.test(dbSystemName))
  ) {
    fail(
      `dbSystemName must be a semantic-convention db.system.name such as "postgresql" or "sqlite", got ${describeValue(dbSystemName)}`,
    );
  }
  const fromCode = slowQueryMs === false ? Number.POSITIVE_INFINITY : slowQueryMs;
  return Object.freeze({
    includeArgs: includeArgs ?? DEFAULT_OPTIONS.includeArgs,
    slowQueryMs: slowQueryFromEnv(readEnv) ?? fromCode ?? DEFAULT_OPTIONS.slowQueryMs,
    dbSystemName,
    spans: spans ?? DEFAULT_OPTIONS.spans,
  });
}
