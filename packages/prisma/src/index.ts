// @sextant/prisma: the public API is exactly what this file names.

export type { PrismaOperationParams, SextantPrismaExtension } from './extension.ts';
export { sextantPrisma } from './extension.ts';
export type { PingablePrismaClient } from './health-check.ts';
export { prismaHealthCheck } from './health-check.ts';
export type { PgPoolLike } from './pool-metrics.ts';
export { registerPgPoolMetrics } from './pool-metrics.ts';
export type { PgPoolMetricsOptions, PrismaHealthCheckOptions, SextantPrismaOptions } from './types.ts';
