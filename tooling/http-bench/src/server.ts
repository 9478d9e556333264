/**
 * One server of the race, run as a child process pinned to one core by the bench:
 * `node server.ts <framework>-<stack> <otlp-base-url>`. It serves `GET /users/:id`, reports its
 * port over IPC, and answers the bench's `usage` (CPU time, peak RSS) and `flush` messages.
 * Frameworks are loaded after the peer stack's SDK has started (Express and Fastify with require(),
 * as a CommonJS app loads them; Nest, which is ESM, by import()), so the OpenTelemetry
 * instrumentations can patch them.
 */
import { createRequire, register } from 'node:module';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { logDestination, user } from './app-common.ts';
import { type BenchMessage, parseVariant, type ServerMessage } from './variants.ts';

const require = createRequire(import.meta.url);
const { framework, stack } = parseVariant(process.argv[2]);
const otlpBase = process.argv[3] ?? 'http://127.0.0.1:4318';
const SERVICE_NAME = 'http-bench';

const USER_SCHEMA = {
  params: { type: 'object', properties: { id: { type: 'string' } } },
  response: {
    200: {
      type: 'object',
      properties: {
        id: { type: 'string' },
        name: { type: 'string' },
        plan: { type: 'string' },
        active: { type: 'boolean' },
      },
    },
  },
};

let flushTraces: () => Promise<unknown> = async () => {};

async function startPeerSdk(instrumentations: unknown[]): Promise<void> {
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
  const { trace } = await import('@opentelemetry/api');
  const sdk = new NodeSDK({
    serviceName: SERVICE_NAME,
    traceExporter: new OTLPTraceExporter({ url: `${otlpBase}/v1/traces` }),
    instrumentations: instrumentations as never,
  });
  sdk.start();
  const provider = trace.getTracerProvider() as unknown as {
    getDelegate?: () => { forceFlush?: () => Promise<void> };
  };
  flushTraces = () => provider.getDelegate?.().forceFlush?.() ?? Promise.resolve();
}

async function createSextantForBench() {
  const { createSextant } = await import('@sextant/core');
  const sextant = createSextant({
    serviceName: SERVICE_NAME,
    tracing: { endpoint: otlpBase, sampler: 'always_on' },
    // Its default destination: stdout, which the bench opens on /dev/null.
    logs: { accessLog: true },
  });
  flushTraces = () => sextant.tracing.forceFlush();
  return sextant;
}

async function startExpress(): Promise<import('node:http').Server> {
  if (stack === 'peer') {
    const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
    const { ExpressInstrumentation } = await import('@opentelemetry/instrumentation-express');
    await startPeerSdk([new HttpInstrumentation(), new ExpressInstrumentation()]);
  }
  const express = require('express') as typeof import('express');
  const app = express();
  let sextant: Awaited<ReturnType<typeof createSextantForBench>> | undefined;
  if (stack === 'sextant') {
    sextant = await createSextantForBench();
    const { createSextantMiddleware, createEndpointsHandler } = await import('@sextant/express');
    app.use(createSextantMiddleware(sextant));
    app.use(createEndpointsHandler(sextant));
  } else if (stack === 'peer') {
    const promBundle = require('express-prom-bundle');
    const pinoHttp = require('pino-http');
    app.use(
      promBundle({ includeMethod: true, includePath: true, promClient: { collectDefaultMetrics: {} } }),
    );
    app.use(pinoHttp({ logger: pino(logDestination()) }));
  }
  app.get('/users/:id', (req, res) => {
    res.json(user(req.params.id));
  });
  if (sextant) {
    const { createErrorHandler } = await import('@sextant/express');
    app.use(createErrorHandler(sextant));
  }
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return server;
}

async function startFastify(): Promise<import('node:http').Server> {
  if (stack === 'peer') {
    const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
    const FastifyOtelInstrumentation = require('@fastify/otel');
    await startPeerSdk([
      new HttpInstrumentation(),
      new FastifyOtelInstrumentation({ registerOnInitialization: true }),
    ]);
  }
  const fastify = require('fastify') as typeof import('fastify').default;
  let app: import('fastify').FastifyInstance;
  if (stack === 'sextant') {
    const sextant = await createSextantForBench();
    const { sextantFastify, sextantServerOptions } = await import('@sextant/fastify');
    app = fastify({ ...sextantServerOptions(sextant) }) as never;
    await app.register(sextantFastify, { sextant });
  } else if (stack === 'peer') {
    app = fastify({ logger: { level: 'info', stream: logDestination() } }) as never;
    await app.register(require('fastify-metrics').default, { endpoint: '/metrics' });
  } else {
    app = fastify();
  }
  app.get('/users/:id', { schema: USER_SCHEMA }, async (request) =>
    user((request.params as { id: string }).id),
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app.server;
}

async function startNestServer(): Promise<import('node:http').Server> {
  if (stack === 'peer') {
    // Nest 12 is ESM and imports Express with `import`, which require-in-the-middle never sees: an
    // ESM application registers OpenTelemetry's loader hook (import-in-the-middle) before loading
    // anything to instrument, as OpenTelemetry's ESM guide says.
    register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
    const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
    const { ExpressInstrumentation } = await import('@opentelemetry/instrumentation-express');
    await startPeerSdk([new HttpInstrumentation(), new ExpressInstrumentation()]);
  }
  const sextant = stack === 'sextant' ? await createSextantForBench() : undefined;
  const { startNest } = await import('./nest-app.ts');
  return startNest(stack, sextant);
}

const START: Record<typeof framework, () => Promise<import('node:http').Server>> = {
  express: startExpress,
  fastify: startFastify,
  nest: startNestServer,
};
const server = await START[framework]();

function send(message: ServerMessage): void {
  process.send?.(message);
}

process.on('message', (message: BenchMessage) => {
  if (message.type === 'usage') {
    const cpu = process.cpuUsage();
    send({ type: 'usage', cpuMicros: cpu.user + cpu.system, maxRssKiB: process.resourceUsage().maxRSS });
  } else if (message.type === 'flush') {
    void flushTraces().then(() => send({ type: 'flushed' }));
  }
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', port: (server.address() as AddressInfo).port });
