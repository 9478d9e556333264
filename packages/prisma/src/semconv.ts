/**
 * Semantic-convention values only this package uses that `@opentelemetry/semantic-conventions`
 * has in its incubating entry (core's semconv.ts holds the shared ones).
 */

export const DB_SYSTEM_NAME_VALUE_COCKROACHDB = 'cockroachdb';
export const DB_SYSTEM_NAME_VALUE_MONGODB = 'mongodb';
export const DB_SYSTEM_NAME_VALUE_OTHER_SQL = 'other_sql';

/** Redacted operation arguments, only with `includeArgs` (no semantic convention exists for them). */
export const ATTR_PRISMA_ARGS = 'prisma.args';
