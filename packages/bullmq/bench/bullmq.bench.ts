/**
 * Jobs per second through a real Redis (REDIS_URL, default redis://127.0.0.1:6379): one queue
 * and worker bare, one with Sextant's telemetry option (and its worker observer), run round
 * after round, interleaved, so a noisy neighbour slows both alike. Each round enqueues JOBS jobs
 * with `add` and waits for the worker to finish them all; the median round is reported, with
 * the CPU time per job of the process. Writes the bullmq section of docs/benchmarks.md.
 */
import { randomUUID } from 'node:crypto';
import { createSextant } from '@sextant/core';
import { type ConnectionOptions, Queue, type Telemetry, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { machineLine, median, writeSection } from '../../../tooling/bench/harness.ts';
import { createBullMQTelemetry, observeWorker } from '../src/index.ts';

const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CONCURRENCY = 16;
/** Adds in flight at once: a producer that does not wait for each add, as a web tier would. */
const PRODUCER_WINDOW = 64;
const url = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const connection: ConnectionOptions = { host: url.hostname, port: Number(url.port || 6379) };

let exported = 0;
const sextant = createSextant({
  serviceName: 'bullmq-bench',
  // Spans are built, batched and handed to an exporter that drops them: the cost of tracing
  // without the network.
  tracing: {
    exporter: {
      export(spans, done) {
        exported += spans.length;
        done({ code: 0 });
      },
      shutdown: () => Promise.resolve(),
    },
  },
  logs: { level: 'warn' },
  env: {},
});

interface Candidate {
  name: string;
  queue: Queue;
  worker: Worker;
  processed: number;
  onDrained: (() => void) | undefined;
}

const prefix = `sextant-bench-${randomUUID().slice(0, 8)}`;

/**
 * A telemetry option that does nothing: what BullMQ's own telemetry code path costs (its `trace`
 * wrapper around each operation, the extra awaits), before any instrumentation does any work.
 */
const DO_NOTHING_SPAN = {
  setSpanOnContext: (ctx: unknown) => ctx,
  setAttribute() {},
  setAttributes() {},
  addEvent() {},
  recordException() {},
  end() {},
};
const DO_NOTHING_TELEMETRY: Telemetry<unknown> = {
  tracer: { startSpan: () => DO_NOTHING_SPAN },
  contextManager: {
    with: (_ctx, fn) => fn(),
    active: () => undefined,
    getMetadata: () => '',
    fromMetadata: (ctx) => ctx,
  },
};

function candidate(
  name: string,
  telemetry: Telemetry<never> | undefined,
  observed = telemetry !== undefined,
): Candidate {
  const options = telemetry ? { connection, prefix, telemetry } : { connection, prefix };
  const entry: Candidate = {
    name,
    queue: new Queue(name, options),
    worker: undefined as unknown as Worker,
    processed: 0,
    onDrained: undefined,
  };
  entry.worker = new Worker(name, async (job) => job.data.n, { ...options, concurrency: CONCURRENCY });
  if (observed) observeWorker(sextant, entry.worker);
  entry.worker.on('completed', () => {
    entry.processed += 1;
    if (entry.processed === JOBS) entry.onDrained?.();
  });
  return entry;
}

async function round(entry: Candidate): Promise<{ jobsPerSecond: number; cpuMicrosPerJob: number }> {
  entry.processed = 0;
  const drained = new Promise<void>((resolve) => {
    entry.onDrained = resolve;
  });
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let sent = 0; sent < JOBS; sent += PRODUCER_WINDOW) {
    const batch: Promise<unknown>[] = [];
    for (let n = sent; n < Math.min(sent + PRODUCER_WINDOW, JOBS); n++) {
      batch.push(entry.queue.add('bench', { n }, { removeOnComplete: true }));
    }
    await Promise.all(batch);
  }
  await drained;
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { jobsPerSecond: JOBS / seconds, cpuMicrosPerJob: (used.user + used.system) / JOBS };
}

const candidates = [
  candidate('bench-bare', undefined),
  candidate('bench-do-nothing', DO_NOTHING_TELEMETRY as Telemetry<never>, false),
  candidate('bench-sextant', createBullMQTelemetry(sextant)),
  candidate('bench-no-spans', createBullMQTelemetry(sextant, { spanOperations: [] })),
];
await Promise.all(candidates.map((entry) => entry.worker.waitUntilReady()));

// Warm-up round, not counted.
for (const entry of candidates) await round(entry);
const samples = new Map(
  candidates.map((entry) => [entry.name, { rates: [] as number[], cpu: [] as number[] }]),
);
for (let index = 0; index < ROUNDS; index++) {
  // Rotating the order too: none always runs right after another's backlog.
  const order = candidates.map((_, offset) => candidates[(index + offset) % candidates.length]!);
  for (const entry of order) {
    const result = await round(entry);
    samples.get(entry.name)!.rates.push(result.jobsPerSecond);
    samples.get(entry.name)!.cpu.push(result.cpuMicrosPerJob);
  }
}

const bare = samples.get('bench-bare')!;
const traced = samples.get('bench-sextant')!;
const unspanned = samples.get('bench-no-spans')!;
const doNothing = samples.get('bench-do-nothing')!;
const bareRate = median(bare.rates);
const tracedRate = median(traced.rates);
const rows = [
  ['BullMQ, no telemetry', bareRate, median(bare.cpu), 1],
  [
    "BullMQ + a do-nothing `telemetry` option (BullMQ's own telemetry code path)",
    median(doNothing.rates),
    median(doNothing.cpu),
    median(doNothing.rates) / bareRate,
  ],
  ['BullMQ + `@sextant/bullmq`', tracedRate, median(traced.cpu), tracedRate / bareRate],
  [
    'BullMQ + `@sextant/bullmq`, `spanOperations: []` (metrics and context, no spans)',
    median(unspanned.rates),
    median(unspanned.cpu),
    median(unspanned.rates) / bareRate,
  ],
] as const;
const markdown = [
  '## @sextant/bullmq',
  '',
  `${JOBS} jobs per round (\`add\`, ${PRODUCER_WINDOW} in flight; worker concurrency ${CONCURRENCY}) through a real Redis, ${ROUNDS} interleaved rounds, median round. Spans are exported to an exporter that drops them.`,
  '',
  '| candidate | jobs/s | CPU µs per job (producer + worker) | jobs/s vs bare |',
  '| --- | ---: | ---: | ---: |',
  ...rows.map(
    ([name, rate, cpu, ratio]) =>
      `| ${name} | ${rate.toFixed(0)} | ${cpu.toFixed(0)} | ${ratio.toFixed(3)} |`,
  ),
  '',
  `Goal: at most 5% fewer jobs/s. Reproduce: \`pnpm --filter @sextant/bullmq bench\` (needs Redis). ${machineLine()}.`,
].join('\n');
writeSection('bullmq', markdown);
console.log(markdown);
console.log(`spans exported: ${exported}`);

for (const entry of candidates) {
  await entry.worker.close();
  await entry.queue.obliterate({ force: true });
  await entry.queue.close();
}
const redis = new Redis({ ...connection, lazyConnect: true });
await redis.connect();
const leftovers = await redis.keys(`${prefix}:*`);
if (leftovers.length > 0) await redis.del(...leftovers);
redis.disconnect();
await sextant.shutdown();
