import { context } from '@opentelemetry/api';
import { down, type HealthCheck, type HealthCheckResult } from '@sextant/core';
import { errorSummary } from './errors.ts';
import { UNINSTRUMENTED_CONTEXT } from './extension.ts';
import { fail } from './options.ts';
import type { PrismaHealthCheckOptions } from './types.ts';

/** The part of a Prisma client the health check needs. */
export interface PingablePrismaClient {
  $queryRawUnsafe(query: string): PromiseLike<unknown>;
}

const PING = 'SELECT 1';
const KNOWN_OPTIONS: ReadonlySet<string> = new Set(['name', 'critical', 'timeoutMs']);

// Prisma's messages start with the call site ("Invalid `prisma.$queryRawUnsafe()` invocation");
// the cause is the last line, and the report's reason has room for one line only.
function failed(error: unknown): HealthCheckResult {
  return down(error instanceof Error ? errorSummary(error.message) : String(error));
}

function ping(prisma: PingablePrismaClient): Promise<HealthCheckResult | undefined> {
  return Promise.resolve(prisma.$queryRawUnsafe(PING)).then(() => undefined, failed);
}

/**
 * A health check that runs `SELECT 1` through the client (and so through its driver adapter and
 * pool): `sextant.health.register(prismaHealthCheck(prisma))`. The probe's query gets no span,
 * metric or slow-query log, even on a client extended with `sextantPrisma`. Name, `critical`
 * and `timeoutMs` are validated by `health.register`.
 */
export function prismaHealthCheck(
  prisma: PingablePrismaClient,
  options: PrismaHealthCheckOptions = {},
): HealthCheck {
  if (typeof (prisma as Partial<PingablePrismaClient> | null)?.$queryRawUnsafe !== 'function') {
    fail('prismaHealthCheck() expects a Prisma client (an object with $queryRawUnsafe)');
  }
  if (typeof options !== 'object' || options === null) fail('prismaHealthCheck() options must be an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      fail(
        `prismaHealthCheck(): unknown option ${JSON.stringify(key)}; known options: ${[...KNOWN_OPTIONS].join(', ')}`,
      );
    }
  }
  const check: HealthCheck = {
    name: options.name ?? 'prisma',
    // The client call cannot be aborted; the health registry's timeout still bounds the probe.
    check: () => context.with(UNINSTRUMENTED_CONTEXT, ping, undefined, prisma),
  };
  if (options.critical !== undefined) check.critical = options.critical;
  if (options.timeoutMs !== undefined) check.timeoutMs = options.timeoutMs;
  return check;
}
