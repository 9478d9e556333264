import { setTimeout as sleep } from 'node:timers/promises';
import { context, ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { createSextant, type SextantOptions } from '@sextant/core';
import { Queue, Worker } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { createBullMQTelemetry } from '../src/index.ts';
import { collectLines, deletePrefix, uniquePrefix, waitFor } from './helpers.ts';

// A file of its own: each test registers its own Sextant (and sampler) as the global tracer provider.

const connection = { host: '127.0.0.1', port: 6379 };
const UNSAMPLED_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
/** A request an upstream service decided not to sample. */
const unsampled = trace.setSpanContext(ROOT_CONTEXT, {
  traceId: UNSAMPLED_TRACE,
  spanId: 'b7ad6b7169203331',
  traceFlags: TraceFlags.NONE,
  isRemote: true,
});

function traceparentOf(metadata: string | undefined) {
  const [, traceId, spanId, flags] = String(JSON.parse(metadata ?? '{}').traceparent).split('-');
  return { traceId, spanId, flags };
}

describe('sampling on a link queue', () => {
  it.each([
    ['the default sampler', {}],
    ['a parent-based ratio sampler', { sampler: 'parentbased_traceidratio', samplerRatio: 1 }],
  ] satisfies Array<[string, SextantOptions['tracing']]>)(
    'records an attempt only when its producer was sampled, with %s',
    async (_, sampling) => {
      const records = collectLines();
      const sextant = createSextant({
        serviceName: 'bullmq-link-sampling',
        tracing: { exporter: 'memory', ...sampling },
        logs: { destination: records },
        env: {},
      });
      const telemetry = createBullMQTelemetry(sextant, { relation: 'link' });
      const prefix = uniquePrefix();
      const name = `${prefix}-queue`;
      const queue = new Queue(name, { connection, prefix, telemetry });
      const seen = new Map<string, { recording: boolean | undefined; metadata: string | undefined }>();
      const worker = new Worker(
        name,
        async (job) => {
          sextant.logger.info({ job_id: job.id }, 'fan-out');
          seen.set(job.name, {
            recording: trace.getActiveSpan()?.isRecording(),
            metadata: job.opts.telemetry?.metadata,
          });
        },
        { connection, prefix, telemetry },
      );
      try {
        const quiet = await context.with(unsampled, () => queue.add('quiet', {}));
        const loud = await sextant.tracer.startActiveSpan('POST /broadcast', async (span) => {
          const added = await queue.add('loud', {});
          span.end();
          return added;
        });
        const attempts = () =>
          sextant.tracing.finishedSpans().filter((span) => span.name === `process ${name}`);
        await waitFor(() => seen.size === 2 && attempts().length >= 1, 'both jobs to run');
        // Give the unsampled attempt's span time to end, had it been recorded.
        await sleep(50);

        // The sampled request's fan-out: a new trace, linked to the producer.
        const [attempt, ...others] = attempts();
        expect(others).toEqual([]);
        expect(attempt!.attributes['messaging.message.id']).toBe(loud.id);
        const producer = sextant.tracing
          .finishedSpans()
          .find((span) => span.name === `add ${name}` && span.attributes['bullmq.job.id'] === loud.id)!;
        expect(attempt!.parentSpanContext).toBeUndefined();
        expect(attempt!.spanContext().traceId).not.toBe(producer.spanContext().traceId);
        expect(attempt!.links.map((link) => link.context.spanId)).toEqual([producer.spanContext().spanId]);
        expect(seen.get('loud')?.recording).toBe(true);

        // The unsampled request's fan-out is not recorded; its logs stay in the request's trace.
        expect(seen.get('quiet')?.recording).toBe(false);
        const quietProducer = traceparentOf(seen.get('quiet')?.metadata);
        expect(quietProducer).toMatchObject({ traceId: UNSAMPLED_TRACE, flags: '00' });
        const log = (id: string | undefined) =>
          records.records().find((record) => record.msg === 'fan-out' && record.job_id === id);
        expect(log(quiet.id)).toMatchObject({ trace_id: UNSAMPLED_TRACE, span_id: quietProducer.spanId });
        expect(log(loud.id)).toMatchObject({
          trace_id: attempt!.spanContext().traceId,
          span_id: attempt!.spanContext().spanId,
        });
      } finally {
        await worker.close();
        await queue.close();
        await deletePrefix(prefix);
        await sextant.shutdown();
      }
    },
  );

  it("samples each run of a job scheduler on its own, whatever its creator's decision", async () => {
    const sextant = createSextant({
      serviceName: 'bullmq-scheduler-sampling',
      tracing: { exporter: 'memory' },
      logs: { destination: collectLines() },
      env: {},
    });
    const telemetry = createBullMQTelemetry(sextant, { relation: 'link' });
    const prefix = uniquePrefix();
    const name = `${prefix}-queue`;
    const queue = new Queue(name, { connection, prefix, telemetry });
    const worker = new Worker(name, async () => 'ok', { connection, prefix, telemetry });
    try {
      await context.with(unsampled, () =>
        queue.upsertJobScheduler('tick', { every: 50, limit: 2 }, { name: 'tick', data: {} }),
      );
      const runs = await waitFor(() => {
        const found = sextant.tracing.finishedSpans().filter((span) => span.name === `process ${name}`);
        return found.length === 2 && found;
      }, 'two recorded runs');
      for (const run of runs) {
        expect(run.spanContext().traceId).not.toBe(UNSAMPLED_TRACE);
        expect(run.links.map((link) => link.context.traceId)).toEqual([UNSAMPLED_TRACE]);
      }
    } finally {
      await worker.close();
      await queue.close();
      await deletePrefix(prefix);
      await sextant.shutdown();
    }
  });
});
