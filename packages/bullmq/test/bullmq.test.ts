import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { createSextant, ERROR_CODES, getRequestId, runWithRequestId, type Sextant } from '@sextant/core';
import {
  DelayedError,
  FlowProducer,
  type Job,
  Queue,
  type QueueOptions,
  Worker,
  type WorkerOptions,
} from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { promtoolCheck } from '../../../tooling/testing/promtool.ts';
import {
  createBullMQTelemetry,
  createRedisHealthCheck,
  observeQueueDepth,
  observeWorker,
  runInJobContext,
  type SextantBullMQTelemetry,
} from '../src/index.ts';
import { resolveOptions } from '../src/options.ts';
import {
  collectLines,
  deletePrefix,
  eventually,
  type FinishedSpan,
  freePort,
  monitorRedis,
  REDIS_URL,
  spansNamed,
  startRedis,
  uniquePrefix,
  waitFor,
} from './helpers.ts';

const connection = { host: '127.0.0.1', port: 6379 };

let sextant: Sextant;
let telemetry: SextantBullMQTelemetry;
const logs = collectLines();
/** Everything a test opened, closed after it (workers first), and its keys deleted. */
const closables: Array<{ close(): Promise<unknown> }> = [];
const prefixes: string[] = [];

function track<T extends { close(): Promise<unknown> }>(closable: T): T {
  closables.push(closable);
  return closable;
}

function setup(options: { queue?: Partial<QueueOptions>; worker?: Partial<WorkerOptions> } = {}) {
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  const name = `${prefix}-queue`;
  const queue = track(new Queue(name, { connection, prefix, telemetry, ...options.queue }));
  const startWorker = (processor: (job: Job) => Promise<unknown>, extra: Partial<WorkerOptions> = {}) => {
    const worker = track(
      new Worker(name, processor, { connection, prefix, telemetry, ...options.worker, ...extra }),
    );
    observeWorker(sextant, worker);
    return worker;
  };
  return { prefix, name, queue, startWorker };
}

const processSpans = (queue: string) => spansNamed(sextant, `process ${queue}`);
const isTick = (span: FinishedSpan) => span.attributes['bullmq.job.name'] === 'tick';
/** The queue's attempt spans, once its job scheduler `tick` has run `runs` times. */
const afterTicks = (queue: string, runs: number, what: string) =>
  waitFor(() => processSpans(queue).filter(isTick).length >= runs && processSpans(queue), what, 500);
const byId = (span: FinishedSpan) => span.spanContext().spanId;

beforeAll(() => {
  sextant = createSextant({
    serviceName: 'bullmq-adapter-test',
    tracing: { exporter: 'memory' },
    logs: { destination: logs },
    env: {},
  });
  telemetry = createBullMQTelemetry(sextant, { queues: { fanout: { relation: 'link' } } });
});

afterEach(async () => {
  for (const closable of closables.splice(0).reverse()) await closable.close().catch(() => {});
  for (const prefix of prefixes.splice(0)) await deletePrefix(prefix);
  sextant.tracing.resetFinishedSpans();
});

afterAll(async () => {
  await sextant.shutdown();
});

describe('options', () => {
  it('refuses an invalid relation with a coded, package-prefixed error', () => {
    expect(() => createBullMQTelemetry(sextant, { relation: 'sibling' as never })).toThrow(
      expect.objectContaining({
        code: ERROR_CODES.INVALID_OPTION,
        message: expect.stringMatching(
          /^@sextant\/bullmq: relation is "sibling": expected "child" or "link"/,
        ),
      }),
    );
    expect(() => createBullMQTelemetry(sextant, { relations: {} } as never)).toThrow(
      /unknown option "relations"/,
    );
  });

  it("keeps scheduled jobs linked whatever a queue's relation, unless a repeat relation is set", () => {
    const resolved = resolveOptions({
      queues: {
        orders: { relation: 'child' },
        reports: { relation: 'child', repeatRelation: 'child' },
        audits: { repeatRelation: 'child' },
      },
    });
    expect(resolved.relationOf('orders')).toBe('child');
    expect(resolved.repeatRelationOf('orders')).toBe('link');
    expect(resolved.repeatRelationOf('reports')).toBe('child');
    expect(resolved.relationOf('audits')).toBe('child');
    expect(resolved.repeatRelationOf('audits')).toBe('child');
    expect(resolved.repeatRelationOf('elsewhere')).toBe('link');

    const global = resolveOptions({ repeatRelation: 'child', queues: { orders: { relation: 'link' } } });
    expect(global.relationOf('orders')).toBe('link');
    expect(global.repeatRelationOf('orders')).toBe('child');
    const overridden = resolveOptions({
      repeatRelation: 'child',
      queues: { orders: { repeatRelation: 'link' } },
    });
    expect(overridden.repeatRelationOf('orders')).toBe('link');
    expect(overridden.repeatRelationOf('elsewhere')).toBe('child');
  });

  it('refuses span operations BullMQ does not trace, and the outcome-only ones, naming the known ones', () => {
    expect(() => createBullMQTelemetry(sextant, { spanOperations: ['add', 'proces'] })).toThrow(
      expect.objectContaining({
        code: ERROR_CODES.INVALID_OPTION,
        message: expect.stringMatching(
          /^@sextant\/bullmq: spanOperations names "proces", not an operation BullMQ traces \(known: add, addBulk, .*process.*\)/,
        ),
      }),
    );
    expect(() => createBullMQTelemetry(sextant, { spanOperations: ['retry'] })).toThrow(
      /spanOperations names "retry", which marks an attempt's outcome and never becomes a span/,
    );
    expect(() => createBullMQTelemetry(sextant, { spanOperations: 'process' as never })).toThrow(
      /spanOperations is "process": expected an array of BullMQ operation names/,
    );
    expect(() => createBullMQTelemetry(sextant, { queues: [] as never })).toThrow(
      /queues is \[\]: expected an object keyed by queue name/,
    );
    expect(resolveOptions({ spanOperations: ['process', 'getNextJob'] }).spanOperations).toEqual(
      new Set(['process', 'getNextJob']),
    );
  });

  it('refuses invalid queue depth options before reading anything, naming what is allowed', () => {
    const queue = { name: 'never-read' } as unknown as Queue;
    const refused = (options: unknown, message: RegExp) =>
      expect(() => observeQueueDepth(sextant, queue, options as never)).toThrow(
        expect.objectContaining({
          code: ERROR_CODES.INVALID_OPTION,
          message: expect.stringMatching(message),
        }),
      );
    refused(
      { states: 'waiting' },
      /observeQueueDepth\(\): states is "waiting": expected a non-empty array of job states \(waiting, active/,
    );
    refused({ states: ['waitng'] }, /states names "waitng": expected a non-empty array of job states/);
    refused({ states: [] }, /states is \[\]: expected a non-empty array/);
    refused({ cacheTtlMs: -5 }, /cacheTtlMs is -5: expected an integer from 0 to 3600000/);
    refused({ timeoutMs: 'soon' }, /timeoutMs is "soon": expected an integer from 1 to 60000/);
    refused({ bogus: 1 }, /unknown option "bogus" \(known: cacheTtlMs, timeoutMs, states\)/);
    refused(null, /options are null: expected an object/);
  });

  it('names the per-queue option and its allowed values when one is invalid', () => {
    expect(() =>
      createBullMQTelemetry(sextant, { queues: { orders: { repeatRelation: 'sibling' as never } } }),
    ).toThrow(
      expect.objectContaining({
        code: ERROR_CODES.INVALID_OPTION,
        message: expect.stringMatching(
          /^@sextant\/bullmq: queues\["orders"\]\.repeatRelation is "sibling": expected "child" or "link"/,
        ),
      }),
    );
    expect(() => createBullMQTelemetry(sextant, { queues: { orders: { repeat: 'link' } as never } })).toThrow(
      expect.objectContaining({
        code: ERROR_CODES.INVALID_OPTION,
        message: expect.stringMatching(
          /^@sextant\/bullmq: unknown option "queues\["orders"\]\.repeat" \(known: relation, repeatRelation\)/,
        ),
      }),
    );
  });
});

describe('producer to consumer', () => {
  it('continues the trace, baggage and request id in the processor, without touching the job data', async () => {
    const { name, queue, startWorker } = setup();
    const seen: Array<Record<string, unknown>> = [];
    startWorker(async (job) => {
      sextant.logger.info({ job_id: job.id }, 'processing');
      seen.push({
        requestId: getRequestId(),
        tenant: propagation.getActiveBaggage()?.getEntry('tenant')?.value,
        spanId: trace.getActiveSpan()?.spanContext().spanId,
        data: job.data,
        metadata: job.opts.telemetry?.metadata,
      });
      return 'done';
    });

    const baggage = propagation.createBaggage({ tenant: { value: 'acme' } });
    const producerCtx = propagation.setBaggage(context.active(), baggage);
    const job = await context.with(producerCtx, () =>
      runWithRequestId('req-producer-1', () =>
        sextant.tracer.startActiveSpan('POST /orders', async (request) => {
          const added = await queue.add('charge', { amount: 3 });
          request.end();
          return added;
        }),
      ),
    );

    const [consumer] = await waitFor(
      () => processSpans(name).length === 1 && processSpans(name),
      'process span',
    );
    const producer = spansNamed(sextant, `add ${name}`).find(
      (span) => span.attributes['bullmq.job.id'] === job.id,
    )!;
    const request = spansNamed(sextant, 'POST /orders')[0]!;
    expect(producer.kind).toBe(SpanKind.PRODUCER);
    expect(producer.parentSpanContext?.spanId).toBe(byId(request));
    expect(consumer!.kind).toBe(SpanKind.CONSUMER);
    expect(consumer!.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(consumer!.parentSpanContext?.spanId).toBe(byId(producer));
    expect(consumer!.attributes).toMatchObject({
      'messaging.system': 'bullmq',
      'messaging.destination.name': name,
      'messaging.operation.name': 'process',
      'messaging.operation.type': 'process',
      'messaging.message.id': job.id,
      'bullmq.job.name': 'charge',
      'bullmq.job.attempts.made': 1,
      'bullmq.job.outcome': 'completed',
    });
    expect(producer.attributes).toMatchObject({
      'messaging.system': 'bullmq',
      'messaging.destination.name': name,
      'messaging.operation.name': 'add',
      'messaging.operation.type': 'send',
      'messaging.message.id': job.id,
    });
    // The completion event would carry the return value; it is left out.
    expect(consumer!.events.map((event) => event.name)).not.toContain('job completed');

    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      requestId: 'req-producer-1',
      tenant: 'acme',
      spanId: byId(consumer!),
      data: { amount: 3 },
    });
    const metadata = JSON.parse(String(seen[0]!.metadata));
    expect(metadata).toMatchObject({ baggage: 'tenant=acme', 'x-request-id': 'req-producer-1' });
    expect(metadata.traceparent).toContain(byId(producer));

    const record = logs.records().find((line) => line.msg === 'processing' && line.job_id === job.id);
    expect(record).toMatchObject({
      trace_id: consumer!.spanContext().traceId,
      span_id: byId(consumer!),
      request_id: 'req-producer-1',
    });
  });

  it("honours the producer's sampling decision and counts the job as in flight", async () => {
    const { name, queue, startWorker } = setup();
    const inFlight: number[] = [];
    const traceIds: Array<string | undefined> = [];
    startWorker(async () => {
      inFlight.push(sextant.inFlight.count);
      traceIds.push(trace.getActiveSpan()?.spanContext().traceId);
      sextant.logger.info('unsampled job');
    });
    const unsampled = trace.setSpanContext(context.active(), {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: 0,
      isRemote: true,
    });
    await context.with(unsampled, () => queue.add('quiet', {}));
    await waitFor(() => traceIds.length === 1, 'the job to run');
    // Give the attempt's span time to end, had it been recorded.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(traceIds).toEqual(['0af7651916cd43dd8448eb211c80319c']);
    expect(processSpans(name)).toEqual([]);
    expect(spansNamed(sextant, `add ${name}`)).toEqual([]);
    expect(inFlight).toEqual([1]);
    expect(logs.records().find((line) => line.msg === 'unsampled job')?.trace_id).toBe(
      '0af7651916cd43dd8448eb211c80319c',
    );
  });

  it('gives a sandboxed processor the producer context from the job it receives', async () => {
    const { queue } = setup();
    const job = await runWithRequestId('req-sandbox', () =>
      sextant.tracer.startActiveSpan('enqueue', async (span) => {
        const added = await queue.add('sandboxed', { keep: true });
        span.end();
        return added;
      }),
    );
    // What BullMQ sends a sandboxed processor: the job as JSON, its options included.
    const sandboxed = JSON.parse(JSON.stringify(job.asJSONSandbox()));
    const [producer] = await waitFor(
      () => spansNamed(sextant, `add ${queue.name}`).length === 1 && spansNamed(sextant, `add ${queue.name}`),
      'the producer span',
    );
    const seen = runInJobContext(sandboxed, () => ({
      traceId: trace.getActiveSpan()?.spanContext().traceId,
      spanId: trace.getActiveSpan()?.spanContext().spanId,
      requestId: getRequestId(),
    }));
    expect(seen).toEqual({
      traceId: producer!.spanContext().traceId,
      spanId: byId(producer!),
      requestId: 'req-sandbox',
    });
    expect(runInJobContext({ opts: { telemetry: { metadata: '{not json' } } }, () => getRequestId())).toMatch(
      /^[0-9a-f-]{36}$/,
    );
  });

  it.each([
    ['a child process', false],
    ['a worker thread', true],
  ])(
    'puts the producer ids on the logs of a real sandboxed processor, in %s',
    async (_, useWorkerThreads) => {
      const { name, prefix, queue } = setup();
      const dir = mkdtempSync(join(tmpdir(), 'sextant-sandbox-'));
      const file = join(dir, 'records.ndjson');
      // The sandbox resolves the workspace packages to their sources, as the tests do.
      const sandbox = {
        execArgv: ['--conditions=sextant-source'],
        env: { ...process.env, SEXTANT_SANDBOX_LOG_FILE: file },
      };
      try {
        const worker = track(
          new Worker(name, fileURLToPath(new URL('./fixtures/sandboxed-processor.ts', import.meta.url)), {
            connection,
            prefix,
            telemetry,
            useWorkerThreads,
            workerForkOptions: sandbox,
            workerThreadsOptions: sandbox,
          }),
        );
        observeWorker(sextant, worker);
        const job = await runWithRequestId('req-real-sandbox', () =>
          sextant.tracer.startActiveSpan('POST /reports', async (span) => {
            const added = await queue.add('report', {});
            span.end();
            return added;
          }),
        );
        const [attempt] = await waitFor(
          () => processSpans(name).length === 1 && processSpans(name),
          'the sandboxed attempt',
          1500,
        );
        expect(attempt!.attributes['bullmq.job.outcome']).toBe('completed');
        const producer = spansNamed(sextant, `add ${name}`).find(
          (span) => span.attributes['bullmq.job.id'] === job.id,
        )!;
        const records = readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        expect(records.map((record) => record.msg)).toEqual(['sandboxed start', 'sandboxed end']);
        // Really elsewhere: another process, or another thread of this one.
        if (useWorkerThreads) expect(records[0]!.thread_id).not.toBe(0);
        else expect(records[0]!.pid).not.toBe(process.pid);
        for (const record of records) {
          expect(record).toMatchObject({
            job_id: job.id,
            trace_id: producer.spanContext().traceId,
            span_id: byId(producer),
            request_id: 'req-real-sandbox',
          });
        }
        expect(attempt!.spanContext().traceId).toBe(producer.spanContext().traceId);
      } finally {
        for (const closable of closables.splice(0).reverse()) await closable.close().catch(() => {});
        if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('runs each attempt as a span of the same trace: two failures, then success', async () => {
    const { name, queue, startWorker } = setup();
    let calls = 0;
    startWorker(async () => {
      calls += 1;
      if (calls < 3) throw new TypeError(`boom ${calls}`);
      return 'ok';
    });
    const job = await queue.add('flaky', {}, { attempts: 3 });
    const attempts = await waitFor(
      () => processSpans(name).length === 3 && processSpans(name),
      'three attempts',
    );
    const producer = spansNamed(sextant, `add ${name}`).find(
      (span) => span.attributes['bullmq.job.id'] === job.id,
    )!;

    expect(new Set(attempts.map((span) => span.spanContext().traceId))).toEqual(
      new Set([producer.spanContext().traceId]),
    );
    // Each attempt is the producer's child, not the previous attempt's.
    for (const attempt of attempts) expect(attempt.parentSpanContext?.spanId).toBe(byId(producer));
    expect(attempts.map((span) => span.attributes['bullmq.job.outcome'])).toEqual([
      'retried',
      'retried',
      'completed',
    ]);
    expect(attempts.map((span) => span.attributes['bullmq.job.attempts.made'])).toEqual([1, 2, 3]);
    const [first, , last] = attempts;
    expect(first!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'boom 1' });
    expect(first!.attributes['error.type']).toBe('TypeError');
    expect(first!.events.find((event) => event.name === 'exception')?.attributes?.['exception.message']).toBe(
      'boom 1',
    );
    expect(last!.status.code).not.toBe(SpanStatusCode.ERROR);
  });

  it("ends a job's last failing attempt as failed, and one the processor moved itself as other", async () => {
    const { name, queue, startWorker } = setup();
    let deferred = false;
    startWorker(async (job: Job, token?: string) => {
      if (job.name === 'defer' && !deferred) {
        deferred = true;
        await job.moveToDelayed(Date.now() + 20, token);
        throw new DelayedError();
      }
      if (job.name === 'doomed') throw new RangeError('never works');
      return 'ok';
    });
    await queue.add('doomed', {}, { attempts: 1 });
    await queue.add('defer', {});
    const attempts = await waitFor(
      () => processSpans(name).length === 3 && processSpans(name),
      'three attempts',
    );
    const outcomes = (jobName: string) =>
      attempts
        .filter((span) => span.attributes['bullmq.job.name'] === jobName)
        .map((span) => [
          span.attributes['bullmq.job.outcome'],
          span.status.code,
          span.attributes['error.type'],
        ]);
    expect(outcomes('doomed')).toEqual([['failed', SpanStatusCode.ERROR, 'RangeError']]);
    // Moving its own job is no error: the attempt just did not finish the job.
    expect(outcomes('defer')).toEqual([
      ['other', SpanStatusCode.UNSET, undefined],
      ['completed', SpanStatusCode.UNSET, undefined],
    ]);
    const body = (await sextant.metrics.render()).body;
    const outcomeCount = (outcome: string) =>
      body
        .split('\n')
        .find(
          (line) =>
            line.startsWith('messaging_job_outcomes_total{') &&
            line.includes(`messaging_destination_name="${name}"`) &&
            line.includes(`outcome="${outcome}"`),
        );
    expect(outcomeCount('failed')).toMatch(/ 1$/);
    expect(outcomeCount('other')).toMatch(/ 1$/);
    expect(outcomeCount('completed')).toMatch(/ 1$/);
  });

  it('starts a new trace and request id at each attempt of a job added with omitContext', async () => {
    const { name, queue, startWorker } = setup();
    const seen: Array<string | undefined> = [];
    let calls = 0;
    startWorker(async () => {
      seen.push(getRequestId());
      calls += 1;
      if (calls === 1) throw new Error('once');
      return 'ok';
    });
    await runWithRequestId('req-omitted', () =>
      sextant.tracer.startActiveSpan('POST /quiet', async (span) => {
        await queue.add('quiet', {}, { attempts: 2, telemetry: { omitContext: true } });
        span.end();
      }),
    );
    const attempts = await waitFor(
      () => processSpans(name).length === 2 && processSpans(name),
      'two attempts',
    );
    const request = spansNamed(sextant, 'POST /quiet')[0]!;
    for (const attempt of attempts) {
      expect(attempt.parentSpanContext).toBeUndefined();
      expect(attempt.spanContext().traceId).not.toBe(request.spanContext().traceId);
    }
    expect(attempts[0]!.spanContext().traceId).not.toBe(attempts[1]!.spanContext().traceId);
    expect(seen).toHaveLength(2);
    expect(seen).not.toContain('req-omitted');
    expect(seen[0]).not.toBe(seen[1]);
  });

  it('links instead of parenting on a queue configured for links', async () => {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const queue = track(new Queue('fanout', { connection, prefix, telemetry }));
    track(new Worker('fanout', async () => 'ok', { connection, prefix, telemetry }));
    const job = await queue.add('broadcast', {});
    const [consumer] = await waitFor(
      () => processSpans('fanout').length === 1 && processSpans('fanout'),
      'span',
    );
    const producer = spansNamed(sextant, 'add fanout').find(
      (span) => span.attributes['bullmq.job.id'] === job.id,
    )!;
    expect(consumer!.parentSpanContext).toBeUndefined();
    expect(consumer!.spanContext().traceId).not.toBe(producer.spanContext().traceId);
    expect(consumer!.links.map((link) => link.context.spanId)).toEqual([byId(producer)]);
  });

  it('keeps the producer as parent across a delay', async () => {
    const { name, queue, startWorker } = setup();
    startWorker(async () => 'ok');
    const job = await queue.add('later', {}, { delay: 150 });
    const [consumer] = await waitFor(() => processSpans(name).length === 1 && processSpans(name), 'span');
    const producer = spansNamed(sextant, `add ${name}`).find(
      (span) => span.attributes['bullmq.job.id'] === job.id,
    )!;
    expect(consumer!.parentSpanContext?.spanId).toBe(byId(producer));
    expect(consumer!.spanContext().traceId).toBe(producer.spanContext().traceId);
  });

  it('carries context through addBulk and flows', async () => {
    const { name, prefix, queue, startWorker } = setup();
    startWorker(async () => 'ok');
    await queue.addBulk([
      { name: 'a', data: {} },
      { name: 'b', data: {} },
    ]);
    const bulk = await waitFor(() => processSpans(name).length === 2 && processSpans(name), 'bulk jobs');
    const [addBulk] = spansNamed(sextant, `addBulk ${name}`);
    expect(addBulk!.attributes['messaging.batch.message_count']).toBe(2);
    for (const span of bulk) expect(span.parentSpanContext?.spanId).toBe(byId(addBulk!));

    const flows = track(new FlowProducer({ connection, prefix, telemetry }));
    sextant.tracing.resetFinishedSpans();
    // BullMQ writes a flow node's context only into a node that has `opts`.
    await flows.add({
      name: 'parent',
      queueName: name,
      data: {},
      opts: {},
      children: [
        { name: 'child-1', queueName: name, data: {}, opts: {} },
        { name: 'child-2', queueName: name, data: {}, opts: {} },
      ],
    });
    const processed = await waitFor(() => processSpans(name).length === 3 && processSpans(name), 'flow jobs');
    const [addFlow] = spansNamed(sextant, `addFlow ${name}`);
    const nodes = spansNamed(sextant, `addNode ${name}`);
    expect(nodes).toHaveLength(3);
    const traceId = addFlow!.spanContext().traceId;
    for (const span of [...nodes, ...processed]) expect(span.spanContext().traceId).toBe(traceId);
    for (const span of processed) {
      const node = nodes.find(
        (candidate) => candidate.attributes['bullmq.job.id'] === span.attributes['messaging.message.id'],
      );
      expect(span.parentSpanContext?.spanId).toBe(byId(node!));
    }
  });

  it('never binds a job to the context the worker loop started in', async () => {
    const { name, prefix, startWorker } = setup();
    // A producer without telemetry: its jobs carry no context.
    const plain = track(new Queue(name, { connection, prefix }));
    const outer = sextant.tracer.startSpan('startup');
    context.with(trace.setSpan(context.active(), outer), () => {
      startWorker(async () => 'ok');
    });
    outer.end();
    await plain.add('bare', {});
    const [consumer] = await waitFor(() => processSpans(name).length === 1 && processSpans(name), 'span');
    expect(consumer!.parentSpanContext).toBeUndefined();
    expect(consumer!.spanContext().traceId).not.toBe(outer.spanContext().traceId);
    // Housekeeping (getNextJob, stalled checks, lock extension, completion) made no span.
    const own = sextant.tracing
      .finishedSpans()
      .filter((span) => span.attributes['bullmq.queue.name'] === name);
    expect(new Set(own.map((span) => span.name))).toEqual(new Set([`process ${name}`]));
  });

  it('gives each run of a job scheduler its own trace, linked to the scheduler', async () => {
    const { name, queue, startWorker } = setup();
    startWorker(async () => 'ok');
    await queue.upsertJobScheduler('tick', { every: 100, limit: 3 }, { name: 'tick', data: {} });
    const runs = await waitFor(() => processSpans(name).length >= 3 && processSpans(name), 'three runs', 500);
    const traces = new Set(runs.map((span) => span.spanContext().traceId));
    expect(traces.size).toBe(runs.length);
    for (const run of runs) {
      expect(run.parentSpanContext).toBeUndefined();
      expect(run.links).toHaveLength(1);
    }
  });
});

describe('request id across attempts', () => {
  const quiet = () => createBullMQTelemetry(sextant, { spanOperations: [] });

  it.each([
    ['inside a trace', () => telemetry, true],
    ['outside any context', () => telemetry, false],
    ['outside any context, with no spans', quiet, false],
  ] as const)(
    'gives every attempt of a job enqueued %s, with no request id, the one written at enqueue',
    async (_, telemetryFor, traced) => {
      const own = telemetryFor();
      const { name, queue, startWorker } = setup({ queue: { telemetry: own }, worker: { telemetry: own } });
      startWorker(async (job) => {
        sextant.logger.info({ queue: name, attempt: job.attemptsMade + 1 }, 'flaky attempt');
        if (job.attemptsMade < 2) throw new Error(`boom ${job.attemptsMade + 1}`);
        return 'ok';
      });
      const add = () => queue.add('flaky', {}, { attempts: 3 });
      const job = traced
        ? await sextant.tracer.startActiveSpan('cron tick', async (span) => {
            const added = await add();
            span.end();
            return added;
          })
        : await add();
      const attempts = await waitFor(() => {
        const found = logs.records().filter((line) => line.msg === 'flaky attempt' && line.queue === name);
        return found.length === 3 && found;
      }, 'three attempts');
      expect(attempts.map((line) => line.attempt)).toEqual([1, 2, 3]);
      const requestIds = new Set(attempts.map((line) => line.request_id));
      expect(requestIds.size).toBe(1);

      // The producer wrote it: a small carrier, the request id beside the trace context (if any).
      const metadata = JSON.parse(job.opts.telemetry?.metadata ?? '{}') as Record<string, string>;
      expect([...requestIds]).toEqual([metadata['x-request-id']]);
      expect(metadata['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(Object.keys(metadata).sort()).toEqual(
        own === telemetry ? ['traceparent', 'x-request-id'] : ['x-request-id'],
      );
      expect(job.opts.telemetry!.metadata!.length).toBeLessThan(160);
      if (traced) {
        const tick = spansNamed(sextant, 'cron tick')[0]!;
        expect(attempts[0]!.trace_id).toBe(tick.spanContext().traceId);
      }
    },
  );

  it('gives every job of a flow enqueued outside any request one request id', async () => {
    const { name, prefix } = setup();
    const flows = track(new FlowProducer({ connection, prefix, telemetry }));
    const tree = await flows.add({
      name: 'parent',
      queueName: name,
      data: {},
      opts: {},
      children: [
        { name: 'child-1', queueName: name, data: {}, opts: {} },
        { name: 'child-2', queueName: name, data: {}, opts: {} },
      ],
    });
    const jobs = [tree.job, ...(tree.children ?? []).map((child) => child.job)];
    const ids = new Set(
      jobs.map((job) => JSON.parse(job.opts.telemetry?.metadata ?? '{}')['x-request-id'] as unknown),
    );
    expect(jobs).toHaveLength(3);
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('job schedulers', () => {
  it("never parents a scheduler's next run to the attempt that just finished, in a busy mixed queue", async () => {
    const { name, queue, startWorker } = setup();
    const inActive: Array<{ job: string; requestId: string | undefined; traceId: string | undefined }> = [];
    const worker = startWorker(
      async (job) => {
        // An application's own add inside its processor: a child of the attempt.
        if (job.name === 'request-job') await queue.add('followup', {});
        // Each run outlasts the schedule's period, so the next run is due (and fetched by the
        // completion of an attempt) as soon as it ends.
        if (job.name === 'tick') await new Promise((resolve) => setTimeout(resolve, 40));
        return 'ok';
      },
      { autorun: false, concurrency: 1 },
    );
    worker.on('active', (job) =>
      runInJobContext(job, () =>
        inActive.push({
          job: job.name,
          requestId: getRequestId(),
          traceId: trace.getActiveSpan()?.spanContext().traceId,
        }),
      ),
    );
    await runWithRequestId('req-mixed', () =>
      sextant.tracer.startActiveSpan('POST /mixed', async (span) => {
        await queue.add('request-job', {});
        span.end();
      }),
    );
    await queue.upsertJobScheduler('tick', { every: 20, limit: 4 }, { name: 'tick', data: {} });
    void worker.run();

    const processed = await afterTicks(name, 4, 'four runs of the scheduler');
    const request = spansNamed(sextant, 'POST /mixed')[0]!;
    const attempts = new Set(processed.map(byId));
    const adds = spansNamed(sextant, `add ${name}`);
    const scheduled = adds.filter((span) => String(span.attributes['bullmq.job.id']).startsWith('repeat:'));
    // The first run comes from the application's upsert; the worker schedules the next three.
    expect(scheduled.length).toBeGreaterThanOrEqual(4);
    for (const add of scheduled) {
      expect(attempts.has(add.parentSpanContext?.spanId ?? '')).toBe(false);
      expect(add.spanContext().traceId).not.toBe(request.spanContext().traceId);
    }
    // Each run is its own trace, linked to the scheduler's upsert.
    const ticks = processed.filter(isTick);
    expect(new Set(ticks.map((span) => span.spanContext().traceId)).size).toBe(ticks.length);
    for (const tick of ticks) expect(tick.spanContext().traceId).not.toBe(request.spanContext().traceId);

    const requestJob = processed.find((span) => span.attributes['bullmq.job.name'] === 'request-job')!;
    const followupAdd = adds.find((span) => span.attributes['bullmq.job.name'] === 'followup')!;
    expect(followupAdd.parentSpanContext?.spanId).toBe(byId(requestJob));
    expect(followupAdd.spanContext().traceId).toBe(request.spanContext().traceId);

    // `active` listeners: `runInJobContext` gives the job's own context, whatever attempt fetched it.
    const followup = inActive.find((entry) => entry.job === 'followup')!;
    expect(followup).toEqual({
      job: 'followup',
      requestId: 'req-mixed',
      traceId: request.spanContext().traceId,
    });
    for (const entry of inActive.filter((item) => item.job === 'tick')) {
      expect(entry.traceId).not.toBe(request.spanContext().traceId);
      expect(entry.requestId).not.toBe('req-mixed');
    }
  });
  it("links a scheduler's runs on a queue whose own jobs are children, unless told otherwise", async () => {
    const run = async (queueOptions: { relation: 'child'; repeatRelation?: 'child' }) => {
      const prefix = uniquePrefix();
      prefixes.push(prefix);
      const name = `${prefix}-queue`;
      const own = createBullMQTelemetry(sextant, { queues: { [name]: queueOptions } });
      const queue = track(new Queue(name, { connection, prefix, telemetry: own }));
      track(new Worker(name, async () => 'ok', { connection, prefix, telemetry: own }));
      const job = await sextant.tracer.startActiveSpan('POST /jobs', async (span) => {
        const added = await queue.add('one-off', {});
        await queue.upsertJobScheduler('tick', { every: 50, limit: 2 }, { name: 'tick', data: {} });
        span.end();
        return added;
      });
      const spans = await waitFor(
        () => processSpans(name).length >= 3 && processSpans(name),
        'the job and two runs',
        500,
      );
      const adds = spansNamed(sextant, `add ${name}`);
      const oneOff = spans.find((span) => span.attributes['messaging.message.id'] === job.id)!;
      const oneOffAdd = adds.find((span) => span.attributes['bullmq.job.id'] === job.id)!;
      // The queue's relation holds for its own jobs.
      expect(oneOff.parentSpanContext?.spanId).toBe(byId(oneOffAdd));
      return {
        request: spansNamed(sextant, 'POST /jobs').at(-1)!,
        runs: spans.filter(isTick),
      };
    };

    const linked = await run({ relation: 'child' });
    expect(linked.runs).toHaveLength(2);
    for (const span of linked.runs) {
      expect(span.parentSpanContext).toBeUndefined();
      expect(span.spanContext().traceId).not.toBe(linked.request.spanContext().traceId);
      expect(span.links).toHaveLength(1);
    }

    const children = await run({ relation: 'child', repeatRelation: 'child' });
    expect(children.runs).toHaveLength(2);
    for (const span of children.runs) {
      expect(span.spanContext().traceId).toBe(children.request.spanContext().traceId);
      expect(span.links).toEqual([]);
    }
  });

  it("gives each run of a scheduler created in a request a request id of its own, without the creator's baggage", async () => {
    const { name, queue, startWorker } = setup();
    const seen: Array<{
      jobId: string | undefined;
      requestId: string | undefined;
      tenant: string | undefined;
    }> = [];
    const inActive = new Map<string, string | undefined>();
    const worker = startWorker(async (job) => {
      seen.push({
        jobId: job.id,
        requestId: getRequestId(),
        tenant: propagation.getActiveBaggage()?.getEntry('tenant')?.value,
      });
      sextant.logger.info({ queue: name, job_id: job.id }, 'scheduled run');
      // Every run fails once: its two attempts share the run's request id.
      if (job.attemptsMade === 0) throw new Error('first attempt of the run');
      return 'ok';
    });
    // `active` listeners (and sandboxed processors) get the same id through runInJobContext.
    worker.on('active', (job) => runInJobContext(job, () => inActive.set(String(job.id), getRequestId())));
    const baggage = propagation.setBaggage(
      context.active(),
      propagation.createBaggage({ tenant: { value: 'acme' } }),
    );
    await context.with(baggage, () =>
      runWithRequestId('req-create-schedule', () =>
        sextant.tracer.startActiveSpan('POST /schedules', async (span) => {
          await queue.upsertJobScheduler(
            'tick',
            { every: 60, limit: 3 },
            { name: 'tick', data: {}, opts: { attempts: 2 } },
          );
          span.end();
        }),
      ),
    );
    const attempts = await waitFor(
      () => processSpans(name).length >= 6 && processSpans(name),
      'two attempts of three runs',
      500,
    );
    const request = spansNamed(sextant, 'POST /schedules')[0]!;
    const upsert = spansNamed(sextant, `add ${name}`).find(
      (span) => span.parentSpanContext?.spanId === byId(request),
    )!;
    // Still linked to the span that created the scheduler, each run in a trace of its own.
    for (const attempt of attempts) {
      expect(attempt.links.map((link) => link.context.spanId)).toEqual([byId(upsert)]);
      expect(attempt.spanContext().traceId).not.toBe(request.spanContext().traceId);
    }

    const byRun = new Map<string, Set<string | undefined>>();
    for (const entry of seen) {
      const ids = byRun.get(String(entry.jobId)) ?? new Set();
      ids.add(entry.requestId);
      byRun.set(String(entry.jobId), ids);
    }
    expect(byRun.size).toBe(3);
    // One request id per run, shared by its attempts, by its `active` listeners and by its logs.
    for (const [jobId, ids] of byRun) {
      expect(jobId).toMatch(/^repeat:/);
      expect(ids.size).toBe(1);
      expect(inActive.get(jobId)).toBe([...ids][0]);
    }
    const requestIds = [...byRun.values()].map((ids) => [...ids][0]);
    expect(new Set(requestIds).size).toBe(3);
    for (const id of requestIds) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(id).not.toBe('req-create-schedule');
    }
    for (const entry of seen) expect(entry.tenant).toBeUndefined();
    const records = logs.records().filter((line) => line.msg === 'scheduled run' && line.queue === name);
    expect(records).toHaveLength(seen.length);
    for (const record of records) {
      expect(record.request_id).toBe([...byRun.get(String(record.job_id))!][0]);
    }
  });

  it("keeps the creator's request id and baggage in a scheduler's runs on a queue whose runs are children", async () => {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const name = `${prefix}-queue`;
    const own = createBullMQTelemetry(sextant, { queues: { [name]: { repeatRelation: 'child' } } });
    const queue = track(new Queue(name, { connection, prefix, telemetry: own }));
    const seen: Array<{ requestId: string | undefined; tenant: string | undefined }> = [];
    track(
      new Worker(
        name,
        async () => {
          seen.push({
            requestId: getRequestId(),
            tenant: propagation.getActiveBaggage()?.getEntry('tenant')?.value,
          });
        },
        { connection, prefix, telemetry: own },
      ),
    );
    const baggage = propagation.setBaggage(
      context.active(),
      propagation.createBaggage({ tenant: { value: 'acme' } }),
    );
    await context.with(baggage, () =>
      runWithRequestId('req-child-schedule', () =>
        queue.upsertJobScheduler('tick', { every: 50, limit: 2 }, { name: 'tick', data: {} }),
      ),
    );
    await waitFor(() => seen.length >= 2, 'two runs', 500);
    for (const entry of seen) expect(entry).toEqual({ requestId: 'req-child-schedule', tenant: 'acme' });
  });

  it('gives the runs of a scheduler created without context nothing of the attempt that fetched them', async () => {
    const { name, prefix, queue, startWorker } = setup();
    // A producer without telemetry: the scheduler stores no context, so BullMQ writes the
    // context it schedules the next run in into that run.
    const plain = track(new Queue(name, { connection, prefix }));
    const ticks: Array<{ requestId: string | undefined; tenant: string | undefined }> = [];
    const worker = startWorker(
      async (job) => {
        if (job.name === 'tick') {
          ticks.push({
            requestId: getRequestId(),
            tenant: propagation.getActiveBaggage()?.getEntry('tenant')?.value,
          });
          await new Promise((resolve) => setTimeout(resolve, 40));
        }
        return 'ok';
      },
      { autorun: false, concurrency: 1 },
    );
    const baggage = propagation.setBaggage(
      context.active(),
      propagation.createBaggage({ tenant: { value: 'acme' } }),
    );
    await context.with(baggage, () =>
      runWithRequestId('req-busy', () =>
        sextant.tracer.startActiveSpan('POST /busy', async (span) => {
          await queue.add('request-job', {});
          span.end();
        }),
      ),
    );
    await plain.upsertJobScheduler('tick', { every: 20, limit: 3 }, { name: 'tick', data: {} });
    void worker.run();
    const processed = await afterTicks(name, 3, 'three runs of the scheduler');
    const request = spansNamed(sextant, 'POST /busy')[0]!;
    const attempts = new Set(processed.map(byId));
    for (const tick of processed.filter(isTick)) {
      expect(tick.spanContext().traceId).not.toBe(request.spanContext().traceId);
      for (const link of tick.links) {
        expect(link.context.traceId).not.toBe(request.spanContext().traceId);
        expect(attempts.has(link.context.spanId)).toBe(false);
      }
    }
    expect(ticks).toHaveLength(3);
    for (const tick of ticks) expect(tick).not.toMatchObject({ requestId: 'req-busy' });
    for (const tick of ticks) expect(tick.tenant).toBeUndefined();
  });
});

describe('attempts that lose their lock', () => {
  it.each([1, 3])(
    'ends an attempt whose job another attempt completed as other, not failed or retried (attempts: %i)',
    async (attempts) => {
      const { prefix, name, queue, startWorker } = setup();
      const redis = new Redis(REDIS_URL);
      track({ close: async () => redis.disconnect() });
      let runs = 0;
      let completedBy: number | undefined;
      const errors: string[] = [];
      const worker = startWorker(
        async (job) => {
          runs += 1;
          const run = runs;
          if (run === 1) {
            // What a processor that blocks the event loop past lockDuration ends up with: its
            // lock is gone, the stalled-jobs checker gives the job to another attempt, and that
            // one completes it first.
            await redis.del(`${prefix}:${name}:${job.id}:lock`);
            await waitFor(() => completedBy !== undefined, 'the other attempt to complete the job');
          }
          return run;
        },
        { concurrency: 2, stalledInterval: 100 },
      );
      worker.on('completed', (_job, result) => {
        completedBy = result as number;
      });
      worker.on('error', (error) => errors.push(error.message));
      const job = await queue.add('stalls', {}, { attempts });
      const spans = await waitFor(
        () => processSpans(name).length === 2 && processSpans(name),
        'both attempts',
      );
      expect(completedBy).toBe(2);
      expect(await queue.getJobState(job.id!)).toBe('completed');
      // The first attempt's completion, then its failure, found the lock gone.
      expect(errors.filter((message) => message.startsWith('Missing lock'))).toHaveLength(2);

      const [winner, loser] = spans;
      expect(winner!.attributes['bullmq.job.outcome']).toBe('completed');
      expect(winner!.status.code).toBe(SpanStatusCode.UNSET);
      expect(loser!.attributes['bullmq.job.outcome']).toBe('other');
      // The lost lock is still the attempt's error: it never finished the job.
      expect(loser!.status).toEqual({
        code: SpanStatusCode.ERROR,
        message: expect.stringMatching(/^Missing lock for job/),
      });
      expect(loser!.attributes['error.type']).toBe('_OTHER');

      const body = (await sextant.metrics.render()).body;
      const outcomes = body
        .split('\n')
        .filter(
          (line) =>
            line.startsWith('messaging_job_outcomes_total{') &&
            line.includes(`messaging_destination_name="${name}"`),
        )
        .map((line) => /outcome="(\w+)"\} (\d+)$/.exec(line)!.slice(1).join(' '))
        .sort();
      expect(outcomes).toEqual(['completed 1', 'other 1']);
    },
  );
});

describe('metrics', () => {
  it('records processing, publishing, wait time and outcomes in a promtool-valid exposition', async () => {
    const { name, queue, startWorker } = setup();
    let calls = 0;
    startWorker(async () => {
      calls += 1;
      if (calls === 1) throw new RangeError('first');
      return 'ok';
    });
    await queue.add('one', {}, { attempts: 2 });
    await waitFor(() => processSpans(name).length === 2, 'two attempts');
    const { body } = await sextant.metrics.render();
    const labels = `messaging_destination_name="${name}"`;
    const line = (metric: string, extra: string) =>
      body
        .split('\n')
        .find((text) => text.startsWith(`${metric}{`) && text.includes(labels) && text.includes(extra));
    expect(line('messaging_process_duration_seconds_count', 'error_type=""')).toMatch(/ 1$/);
    expect(line('messaging_process_duration_seconds_count', 'error_type="RangeError"')).toMatch(/ 1$/);
    expect(
      line('messaging_client_operation_duration_seconds_count', 'messaging_operation_name="add"'),
    ).toMatch(/ 1$/);
    expect(line('messaging_job_wait_duration_seconds_count', 'messaging_system="bullmq"')).toMatch(/ 1$/);
    expect(line('messaging_job_outcomes_total', 'outcome="retried"')).toMatch(/ 1$/);
    expect(line('messaging_job_outcomes_total', 'outcome="completed"')).toMatch(/ 1$/);
    expect(promtoolCheck(body)).toEqual({ status: 0, problems: '' });
  });

  it('measures the wait once per job, not again when the processor moved its own job back', async () => {
    const { name, queue, startWorker } = setup();
    const metricLine = async () =>
      (await sextant.metrics.render()).body
        .split('\n')
        .find(
          (text) =>
            text.startsWith('messaging_job_wait_duration_seconds_count{') &&
            text.includes(`messaging_destination_name="${name}"`),
        );
    let runs = 0;
    startWorker(async (job: Job, token?: string) => {
      runs += 1;
      if (runs === 1) {
        // What a processor does to come back later without spending an attempt.
        await job.moveToDelayed(Date.now() + 50, token);
        throw new DelayedError();
      }
      return 'done';
    });
    await queue.add('deferred', {});
    await waitFor(
      () => processSpans(name).some((span) => span.attributes['bullmq.job.outcome'] === 'completed'),
      'the completed second run',
    );
    expect(runs).toBe(2);
    expect(await metricLine()).toMatch(/ 1$/);
  });

  it("keeps a completion that BullMQ's bookkeeping retried an event, not the attempt's error", async () => {
    const { name, queue, startWorker } = setup();
    startWorker(
      async (job: Job) => {
        const moveToCompleted = job.moveToCompleted.bind(job);
        let failures = 0;
        // Redis drops the connection once while BullMQ stores the result; BullMQ retries it.
        job.moveToCompleted = (async (...args: Parameters<Job['moveToCompleted']>) => {
          if (failures++ === 0) throw new Error('Connection is closed.');
          return moveToCompleted(...args);
        }) as Job['moveToCompleted'];
        return 'stored on the second try';
      },
      { runRetryDelay: 10 },
    );
    await queue.add('flaky-bookkeeping', {});
    const [attempt] = await waitFor(
      () => processSpans(name).length === 1 && processSpans(name),
      'the attempt',
    );
    expect(attempt!.attributes['bullmq.job.outcome']).toBe('completed');
    expect(attempt!.status.code).toBe(SpanStatusCode.UNSET);
    expect(attempt!.attributes['error.type']).toBeUndefined();
    expect(attempt!.events.map((event) => [event.name, event.attributes?.['exception.message']])).toEqual([
      ['exception', 'Connection is closed.'],
    ]);
    const body = (await sextant.metrics.render()).body;
    const series = body
      .split('\n')
      .filter(
        (text) =>
          text.startsWith('messaging_process_duration_seconds_count{') &&
          text.includes(`messaging_destination_name="${name}"`),
      );
    expect(series).toEqual([expect.stringMatching(/error_type="".* 1$/)]);
  });

  it('names the queue of an addBulkFlows whose flows all start in one queue, and none otherwise', async () => {
    const { name, prefix } = setup();
    const other = `${prefix}-other`;
    const flows = track(new FlowProducer({ connection, prefix, telemetry }));
    await flows.addBulk([
      {
        name: 'a',
        queueName: name,
        data: {},
        opts: {},
        // A child elsewhere does not change where the flow starts (as for addFlow).
        children: [{ name: 'a-child', queueName: other, data: {}, opts: {} }],
      },
      { name: 'b', queueName: name, data: {}, opts: {} },
    ]);
    await flows.addBulk([
      { name: 'c', queueName: name, data: {}, opts: {} },
      { name: 'd', queueName: other, data: {}, opts: {} },
    ]);
    const bulks = spansNamed(sextant, `addBulkFlows ${name}`);
    expect(bulks).toHaveLength(1);
    expect(bulks[0]!.attributes['messaging.destination.name']).toBe(name);
    const mixed = spansNamed(sextant, 'addBulkFlows').filter((span) =>
      String(span.attributes['bullmq.job.bulk.names']).startsWith('c,'),
    );
    expect(mixed).toHaveLength(1);
    expect(mixed[0]!.attributes['messaging.destination.name']).toBeUndefined();
    const { body } = await sextant.metrics.render();
    expect(
      body
        .split('\n')
        .find(
          (line) =>
            line.startsWith('messaging_client_operation_duration_seconds_count{') &&
            line.includes(`messaging_destination_name="${name}"`) &&
            line.includes('messaging_operation_name="addBulkFlows"'),
        ),
    ).toMatch(/ 1$/);
  });

  it('reports queue depth by state at scrape time', async () => {
    const { name, queue } = setup();
    const stop = observeQueueDepth(sextant, queue, { cacheTtlMs: 0 });
    await queue.add('x', {}, { delay: 60_000 });
    await queue.add('y', {}, { delay: 60_000 });
    await queue.add('z', {});
    const { body } = await sextant.metrics.render();
    const depth = (state: string) =>
      body
        .split('\n')
        .find(
          (text) =>
            text.startsWith('messaging_queue_depth{') &&
            text.includes(`messaging_destination_name="${name}"`) &&
            text.includes(`state="${state}"`),
        );
    expect(depth('delayed')).toMatch(/ 2$/);
    expect(depth('waiting')).toMatch(/ 1$/);
    expect(depth('active')).toMatch(/ 0$/);
    stop();
    // The jobs are still there, but a stopped queue's depth is no longer reported at all.
    const after = (await sextant.metrics.render()).body;
    expect(
      after
        .split('\n')
        .filter(
          (text) =>
            text.includes(`messaging_destination_name="${name}"`) &&
            text.startsWith('messaging_queue_depth{'),
        ),
    ).toEqual([]);
  });

  it('reads the depth with bounded Redis calls, however often and concurrently it is scraped', async () => {
    const { prefix, queue } = setup();
    await queue.add('waiting', {});
    // Loads the counting script into Redis, so that one reading is one command (EVALSHA).
    await queue.getJobCounts();
    // MONITOR sees every client's commands: only this queue's are counted (its keys carry the
    // test's prefix), and only those sent by a client, not the ones its script runs.
    const monitor = await monitorRedis();
    const probe = new Redis(REDIS_URL);
    const sent: string[][] = [];
    monitor.onCommand((args, source) => {
      if (source !== 'lua' && args.some((arg) => arg.startsWith(`${prefix}:`))) sent.push(args);
    });
    const stop = observeQueueDepth(sextant, queue);
    try {
      // A command MONITOR must see, so nothing that follows is missed.
      await probe.exists(`${prefix}:monitor-ready`);
      await waitFor(() => sent.some((args) => args[0]?.toLowerCase() === 'exists'), 'MONITOR to be live');
      sent.length = 0;

      const scrapes = await Promise.all(Array.from({ length: 25 }, () => sextant.metrics.render()));
      for (let scrape = 0; scrape < 25; scrape++) scrapes.push(await sextant.metrics.render());
      for (const { body } of scrapes) {
        expect(body).toContain(
          `messaging_queue_depth{messaging_system="bullmq",messaging_destination_name="${queue.name}",state="waiting"} 1`,
        );
      }
      // Let MONITOR deliver whatever the scrapes sent.
      await probe.exists(`${prefix}:monitor-done`);
      await waitFor(
        () => sent.some((args) => args.includes(`${prefix}:monitor-done`)),
        'MONITOR to catch up',
      );
      const readings = sent.filter((args) => !args.includes(`${prefix}:monitor-done`));
      // Fifty scrapes inside the default 5 s cache: one reading.
      expect(readings).toHaveLength(1);
      expect(readings[0]![0]?.toLowerCase()).toBe('evalsha');
    } finally {
      stop();
      monitor.close();
      probe.disconnect();
    }
  });
});

describe('spans turned off', () => {
  it('keeps metrics and the context when no operation becomes a span', async () => {
    const quiet = createBullMQTelemetry(sextant, { spanOperations: [] });
    const { name, queue, startWorker } = setup({ queue: { telemetry: quiet }, worker: { telemetry: quiet } });
    const seen: Array<string | undefined> = [];
    startWorker(async () => {
      seen.push(trace.getActiveSpan()?.spanContext().traceId);
      seen.push(getRequestId());
    });
    const request = sextant.tracer.startSpan('request');
    await context.with(trace.setSpan(context.active(), request), () =>
      runWithRequestId('req-quiet', () => queue.add('quiet', {})),
    );
    request.end();
    await waitFor(() => seen.length === 2, 'the job to run');
    expect(seen).toEqual([request.spanContext().traceId, 'req-quiet']);
    const own = sextant.tracing.finishedSpans().filter((span) => span.name.endsWith(name));
    expect(own).toEqual([]);
    // The attempt is measured when it ends, a moment after the processor returns.
    const body = await eventually(async () => {
      const { body: text } = await sextant.metrics.render();
      return text.includes(
        `messaging_process_duration_seconds_count{messaging_system="bullmq",messaging_destination_name="${name}"`,
      )
        ? text
        : undefined;
    }, 'the attempt to be measured');
    const count = (metric: string) =>
      body.split('\n').find((line) => line.startsWith(`${metric}{`) && line.includes(`"${name}"`));
    expect(count('messaging_client_operation_duration_seconds_count')).toMatch(/ 1$/);
    expect(count('messaging_process_duration_seconds_count')).toMatch(/ 1$/);
  });
});

describe('health and outages', () => {
  it('leaves the depth out of a scrape that stops waiting for its reading before the reading ends', async () => {
    const port = await freePort();
    const redis = await startRedis(port);
    // Core waits 200 ms for a gauge's collect; the depth reading's own limit is 500 ms.
    const own = createSextant({
      serviceName: 'depth-wait',
      metrics: { defaultMetrics: false, collectTimeoutMs: 200 },
      logs: { level: 'silent' },
      env: {},
    });
    const queue = new Queue('slow-depth', {
      connection: { host: '127.0.0.1', port },
      prefix: uniquePrefix(),
    });
    const admin = new Redis(redis.url);
    const stop = observeQueueDepth(own, queue, { cacheTtlMs: 0, states: ['waiting'] });
    const depth = async () =>
      (await own.metrics.render()).body
        .split('\n')
        .filter((line) => line.startsWith('messaging_queue_depth{'));
    try {
      await queue.add('x', {});
      expect(await depth()).toEqual([expect.stringMatching(/state="waiting"} 1$/)]);
      // Redis answers nobody for 400 ms: the reading outlasts the scrape's wait.
      await admin.client('PAUSE', 400, 'ALL');
      expect(await depth()).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 450));
      expect(await depth()).toEqual([expect.stringMatching(/state="waiting"} 1$/)]);
    } finally {
      stop();
      await queue.close();
      admin.disconnect();
      await own.shutdown();
      redis.stop();
    }
  });

  it('reports the Redis connection up, and down when nothing answers', async () => {
    const { queue } = setup();
    const unregister = sextant.health.register(createRedisHealthCheck(queue, { name: 'redis-up' }));
    const deadPort = await freePort();
    const dead = track(
      new Queue('dead', {
        connection: { host: '127.0.0.1', port: deadPort, maxRetriesPerRequest: 1 },
        telemetry,
      }),
    );
    dead.on('error', () => {});
    const unregisterDead = sextant.health.register(
      createRedisHealthCheck(dead, { name: 'redis-dead', critical: false, timeoutMs: 300 }),
    );
    const { body } = await sextant.health.detailed();
    expect(body.checks?.find((check) => check.name === 'redis-up')?.status).toBe('up');
    expect(body.checks?.find((check) => check.name === 'redis-dead')).toMatchObject({ status: 'down' });
    unregister();
    unregisterDead();
  });

  it('leaves BullMQ its own behaviour while Redis is down and recovers when it returns', async () => {
    const port = await freePort();
    let redis = await startRedis(port);
    const prefix = uniquePrefix();
    const local = { host: '127.0.0.1', port };
    const traced = track(new Queue('outage', { connection: local, prefix, telemetry }));
    const bare = track(new Queue('outage-bare', { connection: local, prefix }));
    const worker = track(new Worker('outage', async () => 'ok', { connection: local, prefix, telemetry }));
    for (const emitter of [traced, bare, worker] as NodeJS.EventEmitter[]) emitter.on('error', () => {});
    const stopDepth = observeQueueDepth(sextant, traced, { cacheTtlMs: 0, timeoutMs: 200 });
    const outageDepth = (text: string) =>
      text
        .split('\n')
        .filter(
          (line) =>
            line.startsWith('messaging_queue_depth{') && line.includes('messaging_destination_name="outage"'),
        );
    const unregister = sextant.health.register(
      createRedisHealthCheck(traced, { name: 'redis-outage', critical: false }),
    );
    try {
      await traced.add('before', {});
      await waitFor(() => processSpans('outage').length === 1, 'job before the outage');
      expect(outageDepth((await sextant.metrics.render()).body)).toHaveLength(8);

      redis.stop();
      await eventually(
        async () =>
          (await sextant.health.detailed()).body.checks?.find((c) => c.name === 'redis-outage')?.status ===
            'down' || undefined,
        'the health check to see the outage',
      );
      // BullMQ holds an add until the connection is back; with telemetry the application sees the same.
      const settled = (promise: Promise<unknown>) =>
        promise.then(
          () => 'resolved',
          (error: Error) => `rejected: ${error.message}`,
        );
      const adds = [traced, bare].map((queue) => settled(queue.add('during', {})));
      const pending = new Promise((resolve) => setTimeout(resolve, 300, 'pending'));
      const during = await Promise.all(adds.map((add) => Promise.race([add, pending])));
      expect(during[0]).toBe(during[1]);
      // A scrape still answers (the depth reading times out instead of hanging it), without the
      // depth it cannot read: the last reading is not passed off as current.
      const { body } = await sextant.metrics.render();
      expect(body).toContain('messaging_process_duration_seconds');
      expect(outageDepth(body)).toEqual([]);

      redis = await startRedis(port);
      expect(await Promise.all(adds)).toEqual(['resolved', 'resolved']);
      const during2 = await waitFor(
        () => processSpans('outage').find((span) => span.attributes['bullmq.job.name'] === 'during'),
        'job added during the outage',
        1000,
      );
      // The restarted server is empty, so job ids start again: the add made during the outage is the last one.
      const producer = spansNamed(sextant, 'add outage').at(-1)!;
      expect(during2.parentSpanContext?.spanId).toBe(byId(producer));
      await eventually(
        async () =>
          (await sextant.health.detailed()).body.checks?.find((c) => c.name === 'redis-outage')?.status ===
            'up' || undefined,
        'the health check to recover',
      );
      await eventually(
        async () => outageDepth((await sextant.metrics.render()).body).length > 0 || undefined,
        'the queue depth to be read again',
      );
    } finally {
      stopDepth();
      unregister();
      for (const closable of closables.splice(0).reverse()) await closable.close().catch(() => {});
      redis.stop();
    }
  }, 60_000);
});
