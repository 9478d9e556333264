/**
 * `pnpm demo`: the whole product in one command. Starts the Express sample API and the BullMQ
 * worker as their own processes (SQLite by default, Redis from REDIS_URL), collects their spans
 * in a local OTLP receiver, drives a short load whose simulated quantum provider fails often
 * enough to open its circuit breaker, and prints where to look.
 */
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type AppProcess, startApp } from '../testing/app-process.ts';
import { type DecodedSpan, startOtlpReceiver } from '../testing/otlp-receiver.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const jobCount = Number(process.env.DEMO_JOBS ?? 24);
const out = (text = '') => process.stdout.write(`${text}\n`);

function redisReachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port || 6379) });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.end();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A few graphs of different sizes: a ring, a complete graph, a random sparse one. */
function problem(index: number): { type: 'maxcut'; edges: Array<[number, number]> } {
  const size = 4 + (index % 9);
  const edges: Array<[number, number]> = [];
  for (let v = 0; v < size; v++) edges.push([v, (v + 1) % size]);
  if (index % 3 === 0) for (let v = 0; v + 2 < size; v += 2) edges.push([v, v + 2]);
  return { type: 'maxcut', edges };
}

function printTree(spans: DecodedSpan[], traceId: string): void {
  const inTrace = spans.filter((span) => span.traceId === traceId);
  const ids = new Set(inTrace.map((span) => span.spanId));
  const children = new Map<string, DecodedSpan[]>();
  for (const span of inTrace) {
    const parent = ids.has(span.parentSpanId) ? span.parentSpanId : '';
    children.set(parent, [...(children.get(parent) ?? []), span]);
  }
  const walk = (span: DecodedSpan, depth: number) => {
    const ms = (Number(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano)) / 1e6).toFixed(1);
    const service = String(span.resource['service.name'] ?? '?');
    const status = span.status.code === 2 ? ' ERROR' : '';
    out(`    ${'  '.repeat(depth)}${depth ? '└ ' : ''}${span.name}  [${service}, ${ms} ms${status}]`);
    const kids = (children.get(span.spanId) ?? []).sort((a, b) =>
      a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1,
    );
    for (const child of kids) walk(child, depth + 1);
  };
  for (const top of children.get('') ?? []) walk(top, 0);
}

async function main(): Promise<number> {
  if (!(await redisReachable(redisUrl))) {
    out(`Redis is not reachable at ${redisUrl}.`);
    out('Start one, e.g.:  redis-server --port 6379 --save "" --daemonize yes');
    out('or point REDIS_URL at yours, then run `pnpm demo` again.');
    return 1;
  }
  const receiver = await startOtlpReceiver();
  const shared = {
    REDIS_URL: redisUrl,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '200',
    SEXTANT_QUEUE_PREFIX: `sextant-demo-${process.pid}`,
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
  };
  const apps: AppProcess[] = [];
  try {
    const api = await startApp({
      cwd: `${root}apps/express-api`,
      env: { ...shared, PORT: process.env.PORT ?? '0' },
    });
    apps.push(api);
    const worker = await startApp({
      cwd: `${root}apps/worker`,
      env: {
        ...shared,
        METRICS_PORT: process.env.METRICS_PORT ?? '0',
        QUANTUM_FAILURE_RATE: process.env.QUANTUM_FAILURE_RATE ?? '0.3',
        QUANTUM_LATENCY_MS: '60',
        QUANTUM_QUEUE_MS: '30',
        QUANTUM_BREAKER_RESET_MS: '500',
      },
    });
    apps.push(worker);
    out(`express-api  ${api.url}`);
    out(`worker       ${worker.url}`);

    out(`\nSubmitting ${jobCount} max-cut jobs (the simulated provider fails ~30% of calls)...`);
    const submitted: Array<{ id: string; requestId: string; traceId: string }> = [];
    for (let i = 0; i < jobCount; i++) {
      const requestId = `demo-${i + 1}`;
      const response = await fetch(`${api.url}/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': requestId },
        body: JSON.stringify(problem(i)),
      });
      if (response.status !== 202)
        throw new Error(`POST /jobs answered ${response.status}: ${await response.text()}`);
      const { id } = (await response.json()) as { id: string };
      submitted.push({ id, requestId, traceId: response.headers.get('traceresponse')?.split('-')[1] ?? '' });
      await new Promise((resolve) => setTimeout(resolve, 80));
    }
    const invalid = await fetch(`${api.url}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'sudoku' }),
    });
    out(`An invalid problem is refused: ${invalid.status} ${await invalid.text()}`);

    const finished = new Map<
      string,
      { status: string; result?: { solver?: string; fallback_reason?: string } }
    >();
    const deadline = Date.now() + 60_000;
    while (finished.size < submitted.length && Date.now() < deadline) {
      for (const job of submitted) {
        if (finished.has(job.id)) continue;
        const body = (await (await fetch(`${api.url}/jobs/${job.id}`)).json()) as {
          status: string;
          result?: { solver?: string; fallback_reason?: string };
        };
        if (body.status === 'completed' || body.status === 'failed') finished.set(job.id, body);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const bySolver = new Map<string, number>();
    for (const job of finished.values()) {
      const key =
        job.status === 'completed'
          ? `${job.result?.solver ?? '?'}${job.result?.fallback_reason ? ` (fallback: ${job.result.fallback_reason})` : ''}`
          : job.status;
      bySolver.set(key, (bySolver.get(key) ?? 0) + 1);
    }
    out(`\nJobs finished: ${finished.size}/${submitted.length}`);
    for (const [key, count] of bySolver) out(`  ${String(count).padStart(3)}  ${key}`);

    await new Promise((resolve) => setTimeout(resolve, 800));
    const spans = receiver.spans();
    out('\nTraces (one per request, across both processes):');
    const quantum = submitted.find((job) => finished.get(job.id)?.result?.solver === 'quantum');
    const fallback = submitted.find((job) => finished.get(job.id)?.result?.fallback_reason);
    for (const job of [quantum, fallback].filter((j): j is (typeof submitted)[number] => j !== undefined)) {
      out(`  trace ${job.traceId}  (request ${job.requestId})`);
      printTree(spans, job.traceId);
    }

    const sample = fallback ?? submitted[0]!;
    out(`\nLog records of request ${sample.requestId}, from both processes:`);
    for (const [name, app] of [
      ['api', api],
      ['worker', worker],
    ] as const) {
      for (const record of app
        .records()
        .filter((r) => r.request_id === sample.requestId)
        .slice(0, 3)) {
        out(`  ${name.padEnd(6)} ${JSON.stringify(record)}`);
      }
    }

    const workerMetrics = await (await fetch(`${worker.url}/metrics`)).text();
    const apiMetrics = await (await fetch(`${api.url}/metrics`)).text();
    const pick = (text: string, prefix: RegExp) =>
      text
        .split('\n')
        .filter((line) => prefix.test(line))
        .slice(0, 8);
    out('\nMetrics (excerpt):');
    for (const line of pick(apiMetrics, /^http_server_request_duration_seconds_count\{/))
      out(`  api     ${line}`);
    for (const line of pick(
      workerMetrics,
      /^(quantum_jobs_total|quantum_classical_fallbacks_total|quantum_circuit_breaker_state)\{/,
    )) {
      out(`  worker  ${line}`);
    }
    out('\nWhere to look:');
    out(`  ${api.url}/metrics   ${api.url}/health/ready   ${api.url}/health/detailed`);
    out(`  ${worker.url}/metrics   ${worker.url}/health/ready`);
    out('  (the processes stop when the demo ends; run `pnpm --filter express-api start` and');
    out(
      '   `pnpm --filter worker start` to keep them up, with OTEL_EXPORTER_OTLP_ENDPOINT at your collector)',
    );
    return finished.size === submitted.length ? 0 : 1;
  } finally {
    for (const app of apps) {
      app.child.kill('SIGTERM');
      await Promise.race([app.exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      await app.stop();
    }
    await receiver.close();
  }
}

process.exitCode = await main();
