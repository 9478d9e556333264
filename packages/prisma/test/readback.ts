/**
 * What the Prisma tests share whatever the Prisma major (no generated client is imported here):
 * the committed migrations, and reading back spans and metric lines.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Context, context, TraceFlags, trace } from '@opentelemetry/api';
import type { Sextant } from '@sextant/core';

/** The committed migrations of a fixture schema, in order. */
export function migrations(provider: 'postgresql' | 'sqlite'): string[] {
  const directory = fileURLToPath(new URL(`./fixtures/${provider}/migrations/`, import.meta.url));
  return readdirSync(directory)
    .filter((name) => !name.includes('.'))
    .sort()
    .map((name) => readFileSync(join(directory, name, 'migration.sql'), 'utf8'));
}

export function dbSpans(sextant: Sextant) {
  return sextant.tracing.finishedSpans().filter((span) => span.attributes['db.system.name'] !== undefined);
}

export async function metricLines(sextant: Sextant, prefix: string): Promise<string[]> {
  const { body } = await sextant.metrics.render();
  return body.split('\n').filter((line) => line.startsWith(prefix));
}

/** A context whose parent span came in unsampled (a remote `traceparent` with flags 00). */
export function unsampledParent(): Context {
  return trace.setSpanContext(context.active(), {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: TraceFlags.NONE,
    isRemote: true,
  });
}
