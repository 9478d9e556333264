/**
 * The peer of the Prisma benchmark: Prisma's own OpenTelemetry instrumentation
 * (`@prisma/instrumentation`) on an OpenTelemetry SDK tracer provider, its spans batched with
 * Sextant's default limits and exported over OTLP/protobuf to the same sink. Sextant holds the
 * global tracer provider in the candidate process, so the instrumentation is given its own; it
 * reads the global context manager (Sextant's AsyncLocalStorage one), as it would the SDK's.
 *
 * Prisma reads the instrumentation from a global on every query: `enable()` turns it on for the
 * peer's blocks only, so the other candidates in the process run without it.
 */
import { TracerProvider } from '@opentelemetry/sdk-trace';
import { PrismaInstrumentation } from '@prisma/instrumentation';
import { type CountedSpans, createCountedSpans } from '../../../tooling/bench/peer-spans.ts';

export interface PrismaPeer extends Omit<CountedSpans, 'processors'> {
  /** Prisma's instrumentation on (for the peer's queries) or off (for every other candidate's). */
  enable(): void;
  disable(): void;
  shutdown(): Promise<void>;
}

export function createPrismaPeer(otlpBase: string): PrismaPeer {
  const spans = createCountedSpans(otlpBase);
  const provider = new TracerProvider({ spanProcessors: spans.processors });
  // Constructed disabled: enabled, it would install itself now, on the global provider (Sextant's).
  const instrumentation = new PrismaInstrumentation({ enabled: false });
  instrumentation.setTracerProvider(provider);
  return {
    enable: () => instrumentation.enable(),
    disable: () => instrumentation.disable(),
    forceFlush: () => spans.forceFlush(),
    ended: () => spans.ended(),
    exported: () => spans.exported(),
    spanNames: () => spans.spanNames(),
    shutdown: () => provider.shutdown(),
  };
}
