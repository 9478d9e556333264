/**
 * CPU per query of a Prisma 7 client, bare and extended with @sextant/prisma (span exported over
 * OTLP to a local sink, duration metric), on the same findUnique, interleaved in one run; for
 * PostgreSQL (driver adapter pg) and SQLite (driver adapter libsql). Reproduce with `pnpm bench`
 * (or `pnpm --filter @sextant/prisma bench`); docs/benchmarks.md is regenerated.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { context } from '@opentelemetry/api';
import { createSextant } from '@sextant/core';
import {
  type Candidate,
  formatMicros,
  type GroupResult,
  machineLine,
  measureGroup,
  pinToCore,
  writeSection,
} from '../../../tooling/bench/harness.ts';
import { sextantPrisma } from '../src/index.ts';
import { generateClients } from '../test/generate.ts';
import { unsampledParent } from '../test/readback.ts';

const BUDGET_MICROS = 15;
const MEASURE = { iterations: 2_000, rounds: 11, warmup: 1_000, yieldEvery: 100 };

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

const BENCH_CORE = '1';
const SERVER_CORE = '0';

/**
 * The database server's backends and the OTLP sink do their work on the other core: on a two-core
 * machine they would otherwise take turns with the measured process on its own core, and the
 * PostgreSQL rows moved by ±20 µs between runs.
 */
async function pinPostgresBackends(pool: import('pg').Pool): Promise<boolean> {
  // Open every connection the client may use, then move each backend serving this database.
  await Promise.all(Array.from({ length: pool.options.max ?? 10 }, () => pool.query('SELECT 1')));
  const { rows } = await pool.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'",
  );
  return pinToCore(
    rows.map((row) => row.pid),
    SERVER_CORE,
  );
}

await generateClients();
const { openPostgres, openSqlite } = await import('../test/helpers.ts');
const sink = await startSink();
let pinned = pinToCore([process.pid], BENCH_CORE) && pinToCore([sink.child.pid!], SERVER_CORE);
const sextant = createSextant({
  serviceName: 'prisma-bench',
  tracing: { endpoint: sink.url },
  metrics: { defaultMetrics: false },
  logs: { level: 'warn' },
  env: {},
});
const unsampled = unsampledParent();

function ignore(): void {}

interface PassThroughParams {
  args: unknown;
  query: (args: unknown) => Promise<unknown>;
}

interface BenchClient {
  job: { findUnique(args: { where: { id: string } }): PromiseLike<unknown> };
  $extends(extension: unknown): unknown;
}

async function group(name: string, bare: BenchClient): Promise<GroupResult> {
  await bare.job.findUnique({ where: { id: 'missing' } });
  const extended = bare.$extends(sextantPrisma(sextant)) as BenchClient;
  // Prisma's own cost of any query extension, whatever it does: the floor for every extension.
  const passThrough = bare.$extends({
    query: { $allOperations: ({ args, query }: PassThroughParams) => query(args) },
  }) as BenchClient;
  const args = { where: { id: 'bench-1' } };
  // Prisma queries are lazy thenables: `then` runs them and hands the harness a real promise.
  const candidates: Candidate[] = [
    { name: 'bare Prisma client', run: () => bare.job.findUnique(args).then(ignore) },
    { name: 'with an empty query extension', run: () => passThrough.job.findUnique(args).then(ignore) },
    {
      name: 'with @sextant/prisma (sampled, exported)',
      run: () => extended.job.findUnique(args).then(ignore),
      // The round's spans are exported inside its window, not during the next candidate's.
      settle: () => sextant.tracing.forceFlush(),
    },
    {
      name: 'with @sextant/prisma (unsampled parent)',
      run: () => context.with(unsampled, () => extended.job.findUnique(args).then(ignore)),
    },
  ];
  return measureGroup(name, candidates, MEASURE);
}

const results: GroupResult[] = [];
const postgres = await openPostgres();
try {
  await postgres.prisma.job.create({ data: { id: 'bench-1', status: 'queued', result: { n: 1 } } });
  pinned = (await pinPostgresBackends(postgres.pool)) && pinned;
  results.push(
    await group('PostgreSQL (adapter-pg), findUnique by id', postgres.prisma as unknown as BenchClient),
  );
} finally {
  await postgres.close();
}
const sqlite = await openSqlite();
try {
  await sqlite.prisma.job.create({ data: { id: 'bench-1', status: 'queued', result: { n: 1 } } });
  results.push(
    await group('SQLite (adapter-libsql), findUnique by id', sqlite.prisma as unknown as BenchClient),
  );
} finally {
  await sqlite.close();
}
await sextant.shutdown();
sink.child.kill();

const lines = [
  '## @sextant/prisma',
  '',
  `CPU per query (median of ${MEASURE.rounds} interleaved rounds of ${MEASURE.iterations}); ${machineLine()}. Goal: at most ${BUDGET_MICROS} µs added per query.`,
  '',
  'The empty query extension (`$allOperations: ({ args, query }) => query(args)`) is what Prisma charges for any',
  'query extension; the sampled row includes exporting its spans over OTLP to a local sink.',
  pinned
    ? `The bench runs on core ${BENCH_CORE}; the PostgreSQL backends serving it and the OTLP sink on core ${SERVER_CORE}.`
    : '**Unpinned run** (taskset refused): the database server and the sink shared cores with the measured process.',
  '',
];
let overBudget = false;
for (const result of results) {
  const base = result.rows[0]!.cpuMicros;
  lines.push(
    `### ${result.group}`,
    '',
    '| client | CPU µs/query | added µs | ratio |',
    '| --- | ---: | ---: | ---: |',
  );
  for (const row of result.rows) {
    const added = row.cpuMicros - base;
    if (row.name.includes('@sextant/prisma') && added > BUDGET_MICROS) overBudget = true;
    lines.push(
      `| ${row.name} | ${formatMicros(row.cpuMicros)} | ${row === result.rows[0] ? '' : formatMicros(added)} | ${row.ratio.toFixed(2)} |`,
    );
  }
  lines.push('');
}
if (overBudget)
  lines.push(`**Over the goal**: more than ${BUDGET_MICROS} µs added per query in this run.`, '');
const markdown = lines.join('\n');
writeSection('prisma', markdown);
console.log(markdown);
