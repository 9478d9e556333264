import { ERROR_CODES, type Sextant, SextantConfigError } from '@sextant/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prismaHealthCheck, registerPgPoolMetrics, sextantPrisma } from '../src/index.ts';
import { resolveOptions } from '../src/options.ts';
import { testSextant } from './helpers.ts';

function thrown(fn: () => unknown): SextantConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof SextantConfigError) return error;
    throw error;
  }
  throw new Error('expected a SextantConfigError');
}

/** An environment as `sextant.readEnv` reads it. */
const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

describe('options', () => {
  let sextant: Sextant;
  beforeAll(() => {
    ({ sextant } = testSextant({ tracing: { enabled: false } }));
  });
  afterAll(async () => {
    await sextant?.shutdown();
  });

  it('needs a Sextant instance', () => {
    const error = thrown(() => sextantPrisma({} as Sextant));
    expect(error.code).toBe(ERROR_CODES.INVALID_OPTION);
    expect(error.message).toBe(
      '@sextant/prisma: sextantPrisma() expects the instance returned by createSextant() from @sextant/core, got an object',
    );
  });

  it('rejects unknown and invalid options with coded, prefixed messages', () => {
    expect(thrown(() => sextantPrisma(sextant, { slowQuery: 5 } as never)).message).toBe(
      '@sextant/prisma: unknown option "slowQuery"; known options: includeArgs, slowQueryMs, dbSystemName, spans',
    );
    const negative = thrown(() => sextantPrisma(sextant, { slowQueryMs: -1 }));
    expect(negative.code).toBe(ERROR_CODES.INVALID_OPTION);
    expect(negative.message).toMatch(/^@sextant\/prisma: slowQueryMs must be milliseconds from 0 to 3600000/);
    expect(thrown(() => sextantPrisma(sextant, { includeArgs: 'yes' as never })).message).toBe(
      '@sextant/prisma: includeArgs must be a boolean, got string yes',
    );
    expect(thrown(() => sextantPrisma(sextant, { spans: 'no' as never })).message).toBe(
      '@sextant/prisma: spans must be a boolean, got string no',
    );
    expect(thrown(() => sextantPrisma(sextant, { dbSystemName: 'Postgres!' })).message).toMatch(
      /^@sextant\/prisma: dbSystemName must be/,
    );
    expect(thrown(() => prismaHealthCheck({} as never)).message).toBe(
      '@sextant/prisma: prismaHealthCheck() expects a Prisma client (an object with $queryRawUnsafe)',
    );
  });

  it('reads the slow-query threshold from SEXTANT_PRISMA_SLOW_QUERY_MS, over the option', () => {
    expect(resolveOptions({ slowQueryMs: 50 }, envOf({})).slowQueryMs).toBe(50);
    expect(resolveOptions({}, envOf({})).slowQueryMs).toBe(500);
    expect(resolveOptions({ slowQueryMs: false }, envOf({})).slowQueryMs).toBe(Number.POSITIVE_INFINITY);
    expect(
      resolveOptions({ slowQueryMs: 50 }, envOf({ SEXTANT_PRISMA_SLOW_QUERY_MS: '250' })).slowQueryMs,
    ).toBe(250);
    expect(resolveOptions({}, envOf({ SEXTANT_PRISMA_SLOW_QUERY_MS: 'off' })).slowQueryMs).toBe(
      Number.POSITIVE_INFINITY,
    );
    const invalid = thrown(() => resolveOptions({}, envOf({ SEXTANT_PRISMA_SLOW_QUERY_MS: '5s' })));
    expect(invalid.code).toBe(ERROR_CODES.INVALID_ENV);
    expect(invalid.message).toBe(
      '@sextant/prisma: SEXTANT_PRISMA_SLOW_QUERY_MS="5s" is invalid: expected milliseconds from 0 to 3600000, or "off"',
    );
  });

  describe('of registerPgPoolMetrics', () => {
    // Never connected: validation fails before the pool is read.
    const pool = new pg.Pool();
    afterAll(() => pool.end());

    it('rejects options that are not an object, naming what it got', () => {
      for (const [options, got] of [
        [null, 'null'],
        ['replica', 'string replica'],
        [['replica'], 'an array'],
      ] as const) {
        const error = thrown(() => registerPgPoolMetrics(sextant, pool, options as never));
        expect(error.code).toBe(ERROR_CODES.INVALID_OPTION);
        expect(error.message).toBe(
          `@sextant/prisma: registerPgPoolMetrics(): options must be an object, got ${got}`,
        );
      }
    });

    it('rejects an unknown option, naming the known ones', () => {
      const error = thrown(() => registerPgPoolMetrics(sextant, pool, { name: 'replica' } as never));
      expect(error.code).toBe(ERROR_CODES.INVALID_OPTION);
      expect(error.message).toBe(
        '@sextant/prisma: registerPgPoolMetrics(): unknown option "name"; known options: poolName',
      );
    });

    it('rejects an invalid poolName, saying what it got', () => {
      const expected =
        '@sextant/prisma: registerPgPoolMetrics(): poolName must be a string of 1 to 128 characters, got';
      expect(thrown(() => registerPgPoolMetrics(sextant, pool, { poolName: 42 as never })).message).toBe(
        `${expected} number 42`,
      );
      expect(thrown(() => registerPgPoolMetrics(sextant, pool, { poolName: '' })).message).toBe(
        `${expected} a string of 0 characters`,
      );
      expect(thrown(() => registerPgPoolMetrics(sextant, pool, { poolName: 'p'.repeat(129) })).message).toBe(
        `${expected} a string of 129 characters`,
      );
    });

    it('rejects something that is not a pool, saying what it got', () => {
      expect(thrown(() => registerPgPoolMetrics(sextant, 'postgresql://db/orders' as never)).message).toBe(
        '@sextant/prisma: registerPgPoolMetrics() expects a pg Pool (totalCount, idleCount and waitingCount numbers), got string postgresql://db/orders',
      );
    });
  });
});
