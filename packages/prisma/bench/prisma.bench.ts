/**
 * CPU per query of a Prisma 7 client on the same findUnique: bare, with an empty query extension,
 * and with @sextant/prisma (sampled, its spans exported over OTLP to a local sink; under an
 * unsampled parent; 1 query in 10 sampled; and with `spans: false`); for PostgreSQL (driver adapter pg) and SQLite
 * (driver adapter libsql).
 *
 * One process (candidate.ts) holds all the candidates: one Prisma client and its extensions, as an
 * application holds them. After a warm-up, cycle after cycle, each candidate in turn runs a block of
 * queries one after the other (the flush of its sampled spans included), in an order
 * rotated from cycle to cycle; the process reports each block's CPU time, of the event loop's thread
 * and of the whole process. A cycle takes a fraction of a second, so the candidates are measured
 * across the same stretch of time, and the same V8 state: this machine's speed drifts by tens of
 * percent over seconds, and Prisma keeps recompiling its own code for tens of thousands of queries,
 * faster or slower by the minute; in a process of its own, each candidate met both at other times
 * (rounds spread by 30 to 60%). Several fresh processes per database; the table gives the median
 * process and the spread of the processes. The process runs on core 1; this one, the OTLP sink and
 * the PostgreSQL backends serving the candidates on core 0.
 *
 * Reproduce: `pnpm bench` (every package) or `pnpm --filter @sextant/prisma bench`; docs/benchmarks.md
 * is regenerated. Tune with BENCH_PROCESSES, BENCH_CYCLES, BENCH_WARMUP_CYCLES and
 * BENCH_BLOCK_QUERIES; BENCH_WRITE=0 leaves docs/benchmarks.md alone.
 * `pnpm --filter @sextant/prisma instructions` counts instructions instead (instructions.ts).
 */
import { readFileSync } from 'node:fs';
import {
  formatMicros,
  machineLine,
  median,
  pinToCore,
  startOtlpSink,
  writeSection,
} from '../../../tooling/bench/harness.ts';
import {
  BENCH_CORE,
  CANDIDATE_LABELS,
  CANDIDATES,
  type CandidateName,
  DATABASE_LABELS,
  DATABASES,
  type DatabaseName,
  killCandidates,
  openBenchDatabases,
  PEER_CANDIDATES,
  SERVER_CORE,
  sinkPath,
  specFor,
  startCandidate,
} from './protocol.ts';

const BUDGET_MICROS = 15;
// Its package.json is not among its exports.
const PRISMA_INSTRUMENTATION_VERSION = (
  JSON.parse(
    readFileSync(new URL('../node_modules/@prisma/instrumentation/package.json', import.meta.url), 'utf8'),
  ) as { version: string }
).version;
const PROCESSES = Number(process.env.BENCH_PROCESSES ?? 5);
const CYCLES = Number(process.env.BENCH_CYCLES ?? 10);
const WARMUP_CYCLES = Number(process.env.BENCH_WARMUP_CYCLES ?? 10);
/** A span export batch: the sampled candidate's flush after each block sends one full batch, as in production. */
const BLOCK_QUERIES = Number(process.env.BENCH_BLOCK_QUERIES ?? 512);
/** Background work (span export on timers) runs when the loop yields: inside the block, counted. */
const YIELD_EVERY = 100;

/**
 * Instructions per query measured with `pnpm --filter @sextant/prisma instructions` (callgrind),
 * written here by hand with their dates: that run takes minutes and does not belong in every bench.
 */
const INSTRUCTIONS_NOTE = [
  "Instructions per query, which the machine's load does not move (callgrind: `pnpm --filter @sextant/prisma",
  'instructions`; each candidate alone under `node --single-threaded`, 10000 queries of warm-up uninstrumented, then',
  "4 windows of 400 queries), leaving out the self cost of V8's garbage collector and compilers: a PostgreSQL",
  '`findUnique` costs about 421 k instructions with the bare client; @sextant/prisma adds +16 to +31 k under an',
  'unsampled parent (the empty extension alone +24 to +30 k) and +60 to +85 k sampled, in runs on 2026-11-25',
  "and 26. The count moves by ±20 k from run to run: Prisma's client is still being recompiled after 10 000 queries",
  "(in every window V8's compilers cost about as much again as the query), and a window's count depends on which",
  "functions are optimized at the time. Instructions leave out cache misses and the kernel's work: the timed",
  'table above is the measure of the goal.',
].join('\n');

type Stats = Record<string, { posts: number; bytes: number }>;

async function sinkStats(sinkUrl: string): Promise<Stats> {
  return (await (await fetch(`${sinkUrl}/stats`)).json()) as Stats;
}

/** This process and the sink (forked after this) stay off the measured core. */
let pinned = pinToCore([process.pid], SERVER_CORE);
const sink = await startOtlpSink();
const databases = await openBenchDatabases();
// Interrupted: the PostgreSQL schema and the SQLite file go all the same.
process.once('SIGINT', () => {
  killCandidates();
  void databases.close().finally(() => process.exit(130));
});

/** One process's CPU µs per query of each candidate: the event loop's thread, and the whole process. */
type ProcessResult = Record<CandidateName, { thread: number; process: number }>;

/** What the peer's sampled queries ended, by database: spans per query and their names. */
const peerSpans = new Map<DatabaseName, { perQuery: number; names: string[] }>();

async function runProcess(database: DatabaseName, index: number): Promise<ProcessResult> {
  const candidates = await startCandidate(specFor(databases, database, CANDIDATES, sink.url, SERVER_CORE), [
    'taskset',
    '-c',
    BENCH_CORE,
  ]);
  try {
    if (database === 'postgresql') pinned &&= candidates.backendsPinned;
    const totals = Object.fromEntries(
      CANDIDATES.map((candidate) => [candidate, { thread: 0, process: 0 }]),
    ) as ProcessResult;
    for (let cycle = 0; cycle < WARMUP_CYCLES + CYCLES; cycle++) {
      // Rotate the order, so that no candidate always runs first or right after the same one.
      for (let i = 0; i < CANDIDATES.length; i++) {
        const candidate = CANDIDATES[(i + cycle) % CANDIDATES.length]!;
        const block = await candidates.run(candidate, BLOCK_QUERIES, YIELD_EVERY);
        if (candidate === 'peer') {
          peerSpans.set(database, { perQuery: block.spansPerSampledQuery, names: block.spanNames });
        }
        if (cycle < WARMUP_CYCLES) continue;
        totals[candidate].thread += block.threadCpuMicros;
        totals[candidate].process += block.cpuMicros;
      }
    }
    const queries = CYCLES * BLOCK_QUERIES;
    for (const candidate of CANDIDATES) {
      totals[candidate].thread /= queries;
      totals[candidate].process /= queries;
    }
    console.log(
      `[prisma bench] process ${index + 1}/${PROCESSES} ${database}, µs CPU/query (event loop; whole process): ` +
        CANDIDATES.map((candidate) => {
          const { thread, process: whole } = totals[candidate];
          return candidate === 'bare'
            ? `bare ${thread.toFixed(1)}; ${whole.toFixed(1)}`
            : `${candidate} ${signed(thread - totals.bare.thread)}; ${signed(whole - totals.bare.process)}`;
        }).join(', '),
    );
    return totals;
  } finally {
    await candidates.stop();
  }
}

const signed = (micros: number) => `${micros < 0 ? '−' : '+'}${formatMicros(Math.abs(micros))}`;

const results = new Map<DatabaseName, ProcessResult[]>(DATABASES.map((database) => [database, []]));
const started = Date.now();
try {
  for (let index = 0; index < PROCESSES; index++) {
    for (const database of DATABASES) results.get(database)!.push(await runProcess(database, index));
  }
  // The sampled spans really went out (each process checks that each candidate ended as many as it should).
  const stats = await sinkStats(sink.url);
  for (const database of DATABASES) {
    const exported = stats[sinkPath({ database, candidates: CANDIDATES })]?.bytes ?? 0;
    if (exported === 0) throw new Error(`prisma bench: no spans reached the sink from ${database}`);
  }
} finally {
  await databases.close();
  sink.child.disconnect();
}
console.log(`[prisma bench] ${((Date.now() - started) / 1000).toFixed(0)} s`);

const lines = [
  '## @sextant/prisma',
  '',
  `Reproduce: \`pnpm --filter @sextant/prisma bench\` (part of \`pnpm bench\`). ${machineLine()}.`,
  "CPU time per `findUnique` by id: of the event loop's thread (where a query's own work runs), and of the whole",
  "process (V8's compiler and garbage collector threads too; Prisma keeps recompiling its code for tens of",
  'thousands of queries, which makes this column noisier). One process holds all the candidates, one Prisma',
  `client and its extensions, as an application does. After a warm-up of ${WARMUP_CYCLES} cycles, in each of ${CYCLES} cycles every`,
  `candidate in turn runs ${BLOCK_QUERIES} queries one after the other (the export of their sampled spans to a local OTLP`,
  'sink included), in an order rotated from cycle to cycle, so that all are measured across the same',
  "stretch of time and the same V8 state: this machine's speed drifts by tens of percent over seconds, which moved",
  'whole rounds of the earlier table (each candidate in fresh processes of its own) by 30 to 60%. "Added" is the',
  `difference to the bare client in the same process; the table gives the median of ${PROCESSES} processes per database and`,
  `their spread. Goal: at most ${BUDGET_MICROS} µs added per query by @sextant/prisma.`,
  '',
  'The empty query extension (`$allOperations: ({ args, query }) => query(args)`) is what Prisma charges for any',
  "query extension, whatever it does. The peer is Prisma's own OpenTelemetry instrumentation (`@prisma/instrumentation`",
  `${PRISMA_INSTRUMENTATION_VERSION}) on an OpenTelemetry SDK tracer provider, with the same batch limits and exporter as`,
  "Sextant's (OTLP/protobuf to the sink); it is switched on only for its own blocks, as Prisma reads it from a global on",
  'every query. A process fails if a candidate ends spans other than its own, or the peer drops any.',
  pinned
    ? `The candidates run on core ${BENCH_CORE}; the PostgreSQL backends serving them and the OTLP sink on core ${SERVER_CORE}.`
    : '**Unpinned run** (taskset refused): the database server and the sink shared cores with the measured process.',
  '',
];
const overBudget: string[] = [];
const unresolved: string[] = [];
const withinBudget: string[] = [];
for (const database of DATABASES) {
  const processes = results.get(database)!;
  lines.push(
    `### ${DATABASE_LABELS[database]}`,
    '',
    '| client | event loop µs/query | added µs | processes: min – max added | ratio | whole process µs/query | added µs |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const candidate of CANDIDATES) {
    const thread = median(processes.map((result) => result[candidate].thread));
    const whole = median(processes.map((result) => result[candidate].process));
    if (candidate === 'bare') {
      lines.push(
        `| ${CANDIDATE_LABELS[candidate]} | ${formatMicros(thread)} |  |  | 1.00 | ${formatMicros(whole)} |  |`,
      );
      continue;
    }
    const added = processes.map((result) => result[candidate].thread - result.bare.thread);
    const addedWhole = processes.map((result) => result[candidate].process - result.bare.process);
    const ratio = median(processes.map((result) => result[candidate].thread / result.bare.thread));
    const low = Math.min(...added);
    const high = Math.max(...added);
    if (candidate !== 'empty' && !PEER_CANDIDATES.includes(candidate)) {
      const row = `${CANDIDATE_LABELS[candidate]} (${DATABASE_LABELS[database].split(' ')[0]})`;
      if (low > BUDGET_MICROS) overBudget.push(row);
      // Some processes met the goal and some did not: this run cannot tell.
      else if (high > BUDGET_MICROS) unresolved.push(row);
      else withinBudget.push(row);
    }
    lines.push(
      `| ${CANDIDATE_LABELS[candidate]} | ${formatMicros(thread)} | ${signed(median(added))} | ${signed(low)} – ${signed(high)} | ` +
        `${ratio.toFixed(2)} | ${formatMicros(whole)} | ${signed(median(addedWhole))} |`,
    );
  }
  const spans = peerSpans.get(database);
  if (spans !== undefined) {
    const addedOf = (candidate: CandidateName) =>
      median(processes.map((result) => result[candidate].thread - result.bare.thread));
    lines.push(
      '',
      `Prisma's instrumentation ends ${spans.perQuery.toFixed(1)} spans per sampled query (${spans.names.map((name) => `\`${name}\``).join(', ')}); ` +
        `@sextant/prisma ends one. Added per query, sampled: @sextant/prisma ${signed(addedOf('sampled'))} µs, ` +
        `\`@prisma/instrumentation\` ${signed(addedOf('peer'))} µs; 1 in 10 sampled: ${signed(addedOf('one-in-ten'))} µs against ${signed(addedOf('peer-one-in-ten'))} µs.`,
    );
  }
  lines.push('');
}
if (overBudget.length > 0) {
  lines.push(
    `**Over the goal** (more than ${BUDGET_MICROS} µs added on the event loop in every process): ${overBudget.join(', ')}.`,
    '',
  );
}
if (withinBudget.length > 0) {
  lines.push(
    `**Within the goal** (at most ${BUDGET_MICROS} µs added on the event loop in every process): ${withinBudget.join(', ')}.`,
    '',
  );
}
if (unresolved.length > 0) {
  lines.push(
    `**Not resolved** (within ${BUDGET_MICROS} µs in some processes, over it in others): ${unresolved.join(', ')}.`,
    '',
  );
}

if (INSTRUCTIONS_NOTE) lines.push(INSTRUCTIONS_NOTE, '');
const markdown = lines.join('\n');
console.log(markdown);
if (process.env.BENCH_WRITE !== '0') writeSection('prisma', markdown);
