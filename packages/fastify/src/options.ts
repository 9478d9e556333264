import { ERROR_CODES, type Sextant, SextantConfigError } from '@sextant/core';

export const PACKAGE_NAME = '@sextant/fastify';
/** The kind under which failures inside the adapter reach Sextant's internal error sink. */
export const ERROR_KIND = 'fastify';

/** The instance `createSextant()` returns, named the same way in every message. */
const SEXTANT_INSTANCE = 'the instance returned by createSextant() from @sextant/core';

/** A received value, short enough for a message and never an object's contents (they may hold secrets). */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function') return 'a function';
  if (value === '') return 'an empty string';
  return `${typeof value} ${String(value).slice(0, 60)}`;
}

export function optionError(message: string): SextantConfigError {
  return new SextantConfigError(ERROR_CODES.INVALID_OPTION, message, PACKAGE_NAME);
}

export function isSextant(value: unknown): value is Sextant {
  const candidate = value as Partial<Sextant> | null | undefined;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.http?.begin === 'function' &&
    typeof candidate.endpoints?.handle === 'function' &&
    typeof candidate.errors?.report === 'function' &&
    typeof candidate.config === 'object' &&
    typeof candidate.logger === 'object'
  );
}

/** Throws unless `value` is a Sextant instance; `what` says where it was given. */
export function assertSextant(value: unknown, what: 'option' | `${string}()`): asserts value is Sextant {
  if (isSextant(value)) return;
  if (what !== 'option') throw optionError(`${what} expects ${SEXTANT_INSTANCE}, got ${describe(value)}`);
  if (value === undefined) throw optionError(`the sextant option is required: pass ${SEXTANT_INSTANCE}`);
  throw optionError(`sextant must be ${SEXTANT_INSTANCE}, got ${describe(value)}`);
}
