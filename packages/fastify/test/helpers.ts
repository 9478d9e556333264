import { createSextant, type Sextant, type SextantOptions } from '@sextant/core';

export type LogRecord = Record<string, any>;
export type FinishedSpan = ReturnType<Sextant['tracing']['finishedSpans']>[number];

import { collectLines, type LogCollector } from '../../../tooling/testing/log-collector.ts';

export const collectLogs = collectLines;

export function createTestSextant(logs: LogCollector, options: SextantOptions = {}): Sextant {
  return createSextant({
    serviceName: 'fastify-test',
    tracing: { exporter: 'memory' },
    logs: { destination: logs },
    env: {},
    ...options,
  });
}

/** The server span of a request ends on the response's 'finish', which may come after the client has read it. */
export async function waitForSpan(
  sextant: Sextant,
  predicate: (span: FinishedSpan) => boolean,
  timeoutMs = 3000,
): Promise<FinishedSpan> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await sextant.tracing.forceFlush();
    const found = sextant.tracing.finishedSpans().find(predicate);
    if (found) return found;
    if (Date.now() > deadline) throw new Error('no matching span was ended');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export async function waitFor<T>(probe: () => T | undefined, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function traceIdOf(response: Response): string {
  return response.headers.get('traceresponse')!.split('-')[1]!;
}

/** Sum of a Prometheus counter's samples whose labels include all of `labels`. */
export function sampleSum(exposition: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}
