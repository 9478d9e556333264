/**
 * Per-operation CPU cost of @sextant/core, each beside the raw library calls it wraps, in one
 * run. Reproduce with `pnpm bench` (or `pnpm --filter @sextant/core bench`); the table in
 * docs/benchmarks.md is regenerated.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { context, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  BatchSpanProcessor,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import pino from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import {
  formatMicros,
  type GroupResult,
  machineLine,
  measureGroup,
  startOtlpSink,
  writeSection,
} from '../../../tooling/bench/harness.ts';
import { createSextant, type Sextant } from '../src/index.ts';
import { encodeTraceExportRequest } from '../src/otlp-protobuf.ts';

const BUDGET_REQUEST_MICROS = 15;
const BUDGET_RENDER_MILLIS = 20;

const devNull = () => pino.destination({ dest: '/dev/null', sync: false });

function sextantFor(endpoint: string, sampled: boolean): Sextant {
  return createSextant({
    serviceName: 'bench',
    tracing: {
      endpoint,
      sampler: sampled ? 'always_on' : 'always_off',
      batch: { maxQueueSize: 65_536, maxExportBatchSize: 512, scheduledDelayMillis: 200 },
    },
    metrics: { defaultMetrics: false },
    logs: { destination: devNull() },
    env: {},
  });
}

const headers: IncomingHttpHeaders = {
  host: 'api.example.com',
  'user-agent': 'bench/1.0',
  accept: 'application/json',
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
};

/** A full export batch of HTTP server spans with the attributes Sextant records on each. */
async function serverSpanBatch(size: number): Promise<ReadableSpan[]> {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'bench', 'service.instance.id': 'bench-1' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  const tracer = provider.getTracer('@sextant/core');
  for (let i = 0; i < size; i++) {
    const span = tracer.startSpan('GET', {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': 'GET',
        'url.path': `/users/${i}`,
        'url.scheme': 'http',
        'server.address': '127.0.0.1:3000',
        'client.address': '127.0.0.1',
        'network.protocol.version': '1.1',
        'user_agent.original': 'bench/1.0',
      },
    });
    span.updateName('GET /users/:id');
    span.setAttribute('http.route', '/users/:id');
    span.setAttribute('http.response.status_code', 200);
    span.end();
  }
  await provider.forceFlush();
  return exporter.getFinishedSpans();
}

async function main(): Promise<void> {
  const sink = await startOtlpSink();
  const results: GroupResult[] = [];
  const iterations = Number(process.env.BENCH_ITERATIONS ?? 20_000);

  // --- raw OpenTelemetry SDK, exporting to the same sink ---
  const rawProvider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'bench-raw' }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({
          url: `${sink.url}/v1/traces`,
          // The default (30 requests in flight) fails a flush of the whole queue with
          // "Concurrent export limit reached", an unhandled rejection inside the SDK.
          concurrencyLimit: 1_000,
        }),
        maxQueueSize: 65_536,
        scheduledDelayMillis: 200,
      }),
    ],
  });
  const rawTracer = rawProvider.getTracer('bench');
  const rawUnsampled = new TracerProvider({ sampler: new AlwaysOffSampler() }).getTracer('bench');

  // --- span start + end ---
  let sextant = sextantFor(sink.url, true);
  results.push(
    await measureGroup(
      'span start + end (sampled, OTLP export included)',
      [
        {
          name: 'OpenTelemetry SDK',
          run: () => rawTracer.startSpan('op').end(),
          settle: () => rawProvider.forceFlush(),
        },
        {
          name: 'Sextant',
          run: () => sextant.tracer.startSpan('op').end(),
          settle: () => sextant.tracing.forceFlush(),
        },
      ],
      { iterations, yieldEvery: 200 },
    ),
  );
  // What an HTTP server span starts with: the SDK checks each value twice, Sextant's tracer
  // writes plain values straight in.
  const serverAttributes = () => ({
    'http.request.method': 'GET',
    'url.path': '/users/42',
    'url.scheme': 'http',
    'server.address': '127.0.0.1:3000',
    'client.address': '127.0.0.1',
    'network.protocol.version': '1.1',
    'user_agent.original': 'curl/8.5.0',
  });
  results.push(
    await measureGroup(
      'span start (7 attributes) + end (sampled, OTLP export included)',
      [
        {
          name: 'OpenTelemetry SDK',
          run: () => rawTracer.startSpan('GET', { kind: 1, attributes: serverAttributes() }).end(),
          settle: () => rawProvider.forceFlush(),
        },
        {
          name: 'Sextant',
          run: () => sextant.tracer.startSpan('GET', { kind: 1, attributes: serverAttributes() }).end(),
          settle: () => sextant.tracing.forceFlush(),
        },
      ],
      { iterations, yieldEvery: 200 },
    ),
  );
  await sextant.shutdown();
  sextant = sextantFor(sink.url, false);
  results.push(
    await measureGroup('span start + end (unsampled)', [
      { name: 'OpenTelemetry SDK', run: () => rawUnsampled.startSpan('op').end() },
      { name: 'Sextant', run: () => sextant.tracer.startSpan('op').end() },
    ]),
  );
  await sextant.shutdown();

  // --- OTLP/protobuf encoding of one full batch, per span ---
  const batch = await serverSpanBatch(512);
  const encoded = await measureGroup(
    'OTLP/protobuf encoding of a 512-span batch of server spans',
    [
      {
        name: 'upstream serializer (@opentelemetry/otlp-transformer)',
        run: () => ProtobufTraceSerializer.serializeRequest(batch),
      },
      { name: "Sextant's encoder", run: () => encodeTraceExportRequest(batch) },
    ],
    { iterations: 200 },
  );
  // Reported per span: one run encodes the whole batch.
  for (const row of encoded.rows) row.cpuMicros /= batch.length;
  encoded.group = 'OTLP/protobuf encoding, per span (batches of 512 server spans)';
  results.push(encoded);

  // --- a full HTTP request through the primitives ---
  sextant = sextantFor(sink.url, true);
  const rawRegistry = new Registry();
  const rawHistogram = new Histogram({
    name: 'http_server_request_duration_seconds',
    help: 'raw',
    labelNames: ['http_request_method', 'http_route', 'http_response_status_code'],
    registers: [rawRegistry],
  });
  const rawLogger = pino(devNull());
  const response = { statusCode: 200, route: '/users/:id', responseSize: 512 };
  results.push(
    await measureGroup(
      'HTTP request begin + end: span, metrics, access log',
      [
        {
          name: 'raw calls (SDK span, prom-client observe, pino info)',
          run: () => {
            const started = performance.now();
            const span = rawTracer.startSpan('GET', { attributes: { 'http.request.method': 'GET' } });
            span.updateName('GET /users/:id');
            span.setAttribute('http.route', '/users/:id');
            span.setAttribute('http.response.status_code', 200);
            span.end();
            const seconds = (performance.now() - started) / 1000;
            rawHistogram.observe(
              { http_request_method: 'GET', http_route: '/users/:id', http_response_status_code: '200' },
              seconds,
            );
            rawLogger.info(
              { method: 'GET', route: '/users/:id', status: 200, duration_ms: seconds * 1000 },
              'request completed',
            );
          },
          settle: () => rawProvider.forceFlush(),
        },
        {
          name: 'Sextant http.begin + http.end',
          run: () => {
            const exchange = sextant.http.begin({
              method: 'GET',
              url: '/users/42?x=1',
              headers,
              remoteAddress: '127.0.0.1',
            });
            context.with(exchange.context, () => sextant.logger.level);
            sextant.http.end(exchange, response);
          },
          settle: () => sextant.tracing.forceFlush(),
        },
      ],
      { iterations, yieldEvery: 200 },
    ),
  );

  // --- one histogram observation with three labels ---
  const sextantHistogram = sextant.metrics.histogram({
    name: 'bench_operation_duration_seconds',
    help: 'bench',
    labelNames: ['operation', 'outcome', 'region'],
  });
  const rawOperation = new Histogram({
    name: 'bench_operation_duration_seconds',
    help: 'raw',
    labelNames: ['operation', 'outcome', 'region'],
    registers: [rawRegistry],
  });
  const labels = { operation: 'checkout', outcome: 'ok', region: 'eu' };
  results.push(
    await measureGroup(
      'histogram observe, three labels',
      [
        { name: 'prom-client', run: () => rawOperation.observe(labels, 0.042) },
        { name: 'Sextant', run: () => sextantHistogram.observe(labels, 0.042) },
      ],
      { iterations: iterations * 5 },
    ),
  );

  // --- one log record with a nested object that needs redaction ---
  const payload = {
    user: { email: 'ada@example.com', password: 'hunter2', profile: { plan: 'pro' } },
    headers: { authorization: 'Bearer abc.def.ghi', accept: 'application/json' },
    note: 'card 4111 1111 1111 1111 on file',
  };
  const rawRedacting = pino({ redact: ['user.password', 'headers.authorization', 'user.email'] }, devNull());
  results.push(
    await measureGroup('log record with redaction', [
      {
        name: 'pino (fast-redact paths, no value patterns)',
        run: () => rawRedacting.info(payload, 'checkout'),
      },
      {
        name: 'Sextant (keys at any depth + value patterns)',
        run: () => context.with(ROOT_CONTEXT, () => sextant.logger.info(payload, 'checkout')),
      },
    ]),
  );

  // --- rendering 10k series ---
  const rawRender = new Registry();
  const rawCounter = new Counter({
    name: 'bench_series_total',
    help: 'raw',
    labelNames: ['key'],
    registers: [rawRender],
  });
  const renderSextant = createSextant({
    serviceName: 'bench-render',
    tracing: { enabled: false },
    metrics: { defaultMetrics: false, seriesLimit: 20_000 },
    logs: { destination: devNull() },
    env: {},
  });
  const sextantCounter = renderSextant.metrics.counter({
    name: 'bench_series_total',
    help: 'bench',
    labelNames: ['key'],
  });
  for (let i = 0; i < 10_000; i++) {
    rawCounter.inc({ key: `k${i}` });
    sextantCounter.inc({ key: `k${i}` });
  }
  results.push(
    await measureGroup(
      '/metrics rendering, 10k counter series',
      [
        { name: 'prom-client registry.metrics()', run: () => rawRender.metrics() },
        { name: 'Sextant metrics.render()', run: () => renderSextant.metrics.render() },
      ],
      { iterations: 20, warmup: 5, rounds: 5 },
    ),
  );

  await sextant.shutdown();
  await renderSextant.shutdown();
  await rawProvider.shutdown();
  sink.child.kill();
  trace.disable();

  const sextantRow = (group: string) => {
    const result = results.find((candidate) => candidate.group.startsWith(group));
    if (result === undefined) throw new Error(`core bench: no group named '${group}'`);
    return result.rows[1]!.cpuMicros;
  };
  const request = sextantRow('HTTP request begin + end');
  const render = sextantRow('/metrics rendering') / 1000;
  const lines = [
    '## @sextant/core: per-operation CPU',
    '',
    `Reproduce: \`pnpm --filter @sextant/core bench\` (part of \`pnpm bench\`). ${machineLine()}.`,
    'CPU time (user + system) per operation, median of interleaved rounds; ratio is to the first row of each group.',
    '',
    '| operation | implementation | CPU µs/op | ratio |',
    '| --- | --- | ---: | ---: |',
  ];
  for (const group of results) {
    for (const row of group.rows) {
      const cpu = group.group.startsWith('/metrics')
        ? `${formatMicros(row.cpuMicros / 1000)} ms`
        : formatMicros(row.cpuMicros);
      lines.push(`| ${group.group} | ${row.name} | ${cpu} | ${row.ratio.toFixed(2)} |`);
    }
  }
  lines.push(
    '',
    `Budgets: a full request begin + end ≤ ${BUDGET_REQUEST_MICROS} µs CPU — **${request <= BUDGET_REQUEST_MICROS ? 'met' : 'missed'}** (${formatMicros(request)} µs); ` +
      `rendering 10k series ≤ ${BUDGET_RENDER_MILLIS} ms — **${render <= BUDGET_RENDER_MILLIS ? 'met' : 'missed'}** (${formatMicros(render)} ms).`,
  );
  writeSection('core', lines.join('\n'));
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
