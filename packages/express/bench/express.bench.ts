/**
 * Server CPU per request of an Express 5 app, bare and with @sextant/express (adapter and core,
 * sampled spans exported over OTLP included), in one run. Requests come pipelined over one
 * keep-alive socket so the client's share is small and the same for both. Reproduce with
 * `pnpm bench` (or `pnpm --filter @sextant/express bench`); docs/benchmarks.md is regenerated.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { context } from '@opentelemetry/api';
import { createSextant, type Sextant } from '@sextant/core';
import express from 'express';
import pino from 'pino';
import { formatMicros, machineLine, measureGroup, writeSection } from '../../../tooling/bench/harness.ts';
import { createEndpointsHandler, createErrorHandler, createSextantMiddleware } from '../src/index.ts';

const BUDGET_MICROS = 15;
const PIPELINE = 50;
const PATH = '/api/orgs/acme/projects/p1/tasks/t9';

async function startSink(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require('node:http').createServer((req, res) => { req.resume(); req.on('end', () => res.writeHead(200).end()); })
        .listen(0, '127.0.0.1', function () { process.stdout.write(String(this.address().port) + '\\n'); });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  return { url: `http://127.0.0.1:${chunk.toString().trim()}`, child };
}

/** The least an adapter can do on core's primitives (and its route is only the last segment). */
function handWritten(sextant: Sextant): express.RequestHandler {
  return (req, res, next) => {
    const exchange = sextant.http.begin({ method: req.method, url: req.originalUrl, headers: req.headers });
    for (const [name, value] of exchange.responseHeaders) res.setHeader(name, value);
    sextant.http.endOnResponse(exchange, res, () => req.route?.path);
    context.with(exchange.context, next);
  };
}

function buildApp(sextant: Sextant | undefined, adapter: boolean) {
  const app = express();
  if (sextant && adapter) {
    app.use(createSextantMiddleware(sextant));
    app.use(createEndpointsHandler(sextant));
  } else if (sextant) {
    app.use(handWritten(sextant));
  }
  const tasks = express.Router({ mergeParams: true });
  tasks.get('/tasks/:task', (req, res) => {
    res.json({ task: req.params.task });
  });
  const org = express.Router({ mergeParams: true });
  org.use('/projects/:project', tasks);
  const api = express.Router();
  api.use('/orgs/:org', org);
  app.use('/api', api);
  if (sextant && adapter) app.use(createErrorHandler(sextant));
  return app;
}

/** One socket, requests written in batches; resolves when a batch's responses are all in. */
async function pipelinedClient(server: Server): Promise<{ batch(): Promise<void>; close(): void }> {
  const socket: Socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(socket, 'connect');
  socket.setNoDelay(true);
  const request = `GET ${PATH} HTTP/1.1\r\nhost: bench\r\nuser-agent: bench/1.0\r\naccept: application/json\r\n\r\n`;
  const payload = Buffer.from(request.repeat(PIPELINE));
  let pending = 0;
  let carry = '';
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    const text = carry + chunk.toString('latin1');
    let at = text.indexOf('HTTP/1.1 ');
    while (at !== -1) {
      pending--;
      at = text.indexOf('HTTP/1.1 ', at + 9);
    }
    carry = text.slice(-8);
    if (pending === 0) wake?.();
  });
  return {
    batch() {
      pending = PIPELINE;
      const done = new Promise<void>((resolve) => {
        wake = resolve;
      });
      socket.write(payload);
      return done;
    },
    close: () => socket.destroy(),
  };
}

async function main(): Promise<void> {
  const sink = await startSink();
  const sextant = createSextant({
    serviceName: 'bench',
    tracing: { endpoint: sink.url, batch: { maxQueueSize: 65_536, scheduledDelayMillis: 200 } },
    metrics: { defaultMetrics: false },
    logs: { destination: pino.destination({ dest: '/dev/null', sync: false }), accessLog: true },
    env: {},
  });
  const servers = [buildApp(undefined, false), buildApp(sextant, false), buildApp(sextant, true)].map((app) =>
    app.listen(0, '127.0.0.1'),
  );
  await Promise.all(servers.map((server) => once(server, 'listening')));
  const [bare, primitives, instrumented] = await Promise.all(servers.map(pipelinedClient));

  const iterations = Number(process.env.BENCH_ITERATIONS ?? 400);
  const result = await measureGroup(
    `Express 5 request, nested routers (${PIPELINE} pipelined per operation)`,
    [
      { name: 'Express 5, bare', run: () => bare!.batch() },
      {
        name: 'Express 5 + core primitives, hand-written middleware',
        run: () => primitives!.batch(),
        settle: () => sextant.tracing.forceFlush(),
      },
      {
        name: 'Express 5 + @sextant/express',
        run: () => instrumented!.batch(),
        settle: () => sextant.tracing.forceFlush(),
      },
    ],
    { iterations, warmup: 100 },
  );
  for (const client of [bare, primitives, instrumented]) client!.close();
  for (const server of servers) server.close();
  await sextant.shutdown();
  sink.child.kill();

  const [baseline, withPrimitives, withAdapter] = result.rows.map((row) => row.cpuMicros / PIPELINE);
  const added = withAdapter! - baseline!;
  const adapterOnly = withAdapter! - withPrimitives!;
  const table = [
    `### @sextant/express`,
    '',
    machineLine(),
    '',
    '| candidate | server CPU per request (µs) | ratio |',
    '| --- | ---: | ---: |',
    ...result.rows.map(
      (row) => `| ${row.name} | ${formatMicros(row.cpuMicros / PIPELINE)} | ${row.ratio.toFixed(2)} |`,
    ),
    '',
    `Added per request by Sextant (span, metrics, access log record, OTLP export): ${formatMicros(added)} µs, ` +
      `budget ${BUDGET_MICROS} µs — **${added <= BUDGET_MICROS ? 'met' : 'missed'}**; of which the adapter itself ` +
      `(full route templates, endpoints, error handler) beyond core's primitives: ${formatMicros(adapterOnly)} µs.`,
  ].join('\n');
  console.log(table);
  if (process.env.BENCH_WRITE !== '0') writeSection('express', table);
}

await main();
