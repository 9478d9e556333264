/**
 * CPU per query of a Prisma 7 client on the same findUnique: bare, with an empty query extension,
 * and with @sextant/prisma (sampled, its spans exported over OTLP to a local sink; and under an
 * unsampled parent); for PostgreSQL (driver adapter pg) and SQLite (driver adapter libsql).
 *
 * Each candidate runs alone in a fresh process (candidate.ts) per round, pinned to core 1: it
 * warms up, then measures process.cpuUsage over a fixed number of queries run one after the other
 * (the sampled candidate's flush included). Rounds are interleaved, in an order rotated from round
 * to round; the median round of each candidate is reported. One process per candidate keeps the
 * candidates from sharing JIT feedback (call sites made polymorphic by four clients), garbage and
 * V8's once-per-process heuristics; one process per round keeps a single lucky or unlucky start
 * from deciding a column. This process, the OTLP sink and the PostgreSQL backends serving the
 * candidates run on core 0.
 *
 * Reproduce: `pnpm bench` (every package) or `pnpm --filter @sextant/prisma bench`; docs/benchmarks.md
 * is regenerated. Tune with BENCH_ROUNDS, BENCH_QUERIES and BENCH_WARMUP_QUERIES; BENCH_WRITE=0
 * leaves docs/benchmarks.md alone. `pnpm --filter @sextant/prisma instructions` counts
 * instructions instead (instructions.ts).
 */
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
  SERVER_CORE,
  specFor,
  startCandidate,
} from './protocol.ts';

const BUDGET_MICROS = 15;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 2000);
const WARMUP = Number(process.env.BENCH_WARMUP_QUERIES ?? 3000);
/** Background work (span export on timers) runs when the loop yields: inside the window, counted. */
const YIELD_EVERY = 100;

/**
 * Instructions per query measured with `pnpm --filter @sextant/prisma instructions` (callgrind),
 * written here by hand with their date: that run takes about twenty minutes.
 */
const INSTRUCTIONS_NOTE = [
  "Instructions per query, which the machine's load does not move (callgrind: `pnpm --filter @sextant/prisma",
  'instructions`, runs on 2026-11-26; each candidate alone under `node --single-threaded`, 10000 queries of',
  "warm-up uninstrumented, then 4 windows of 400 queries). Leaving out the self cost of V8's garbage collector and",
  'compilers, a PostgreSQL `findUnique` costs 421 k instructions with the bare client (windows 397 to 464 k);',
  '@sextant/prisma adds +31 k under an unsampled parent (the empty extension alone added +24 to +30 k in',
  'earlier runs) and +85 k sampled, its span, duration metric and OTLP export included (the fewest windows:',
  '+26 k and +70 k). An earlier version of the count forced a full garbage collection before each window: V8 then',
  "throws away optimized code, and the span's path, run once per query, ran partly unoptimized through the window,",
  'which nearly doubled the sampled figure (+143 to +169 k). Instructions leave memory out: with `--trace-gc-nvp` over',
  "4000 queries, each query promoted about 1.9 KB to V8's old generation with the bare client and 2.6 to 3.9 KB",
  'with any query extension, the empty one included, which the timed rows pay for in garbage collection.',
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
const samples = new Map<string, number[]>();
const key = (database: DatabaseName, candidate: CandidateName) => `${database}-${candidate}`;
const started = Date.now();
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const database of DATABASES) {
      // Rotate the order, so that no candidate always runs first or right after the same one.
      const order = CANDIDATES.map((_, i) => CANDIDATES[(i + round) % CANDIDATES.length]!);
      for (const candidate of order) {
        const process_ = await startCandidate(
          specFor(databases, database, candidate, sink.url, SERVER_CORE),
          ['taskset', '-c', BENCH_CORE],
        );
        try {
          if (database === 'postgresql') pinned &&= process_.backendsPinned;
          await process_.run(WARMUP, YIELD_EVERY);
          const { cpuMicros, wallMicros, queries } = await process_.run(QUERIES, YIELD_EVERY);
          const perQuery = cpuMicros / queries;
          samples.set(key(database, candidate), [...(samples.get(key(database, candidate)) ?? []), perQuery]);
          console.log(
            `[prisma bench] round ${round + 1}/${ROUNDS} ${database} ${candidate}: ${perQuery.toFixed(1)} µs CPU/query, ` +
              `core busy ${((cpuMicros / wallMicros) * 100).toFixed(0)}%`,
          );
        } finally {
          await process_.stop();
        }
      }
    }
  }
  // The sampled candidates must really have exported their spans, and nobody else anything.
  const stats = await sinkStats(sink.url);
  for (const database of DATABASES) {
    for (const candidate of CANDIDATES) {
      const exported = stats[key(database, candidate)]?.bytes ?? 0;
      if (candidate === 'sampled' ? exported === 0 : exported !== 0) {
        throw new Error(`prisma bench: ${candidate} on ${database} exported ${exported} bytes of spans`);
      }
    }
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
  `CPU time (user + system) per \`findUnique\` by id, median of ${ROUNDS} rounds; min – max shows the spread of`,
  'the rounds. Every round starts each candidate in a fresh process of its own, in an order rotated from round to',
  `round; the process warms up with ${WARMUP} queries, then measures ${QUERIES} run one after the other (for the`,
  'sampled candidate, the flush of their spans to a local OTLP sink included). Until 2026-11-26 the four',
  'candidates ran interleaved in one process, where they shared call sites made polymorphic by four clients,',
  "garbage and V8's once-per-process heuristics: there the empty extension measured anywhere from +2 to +40 µs.",
  `Goal: at most ${BUDGET_MICROS} µs added per query by @sextant/prisma.`,
  '',
  'The empty query extension (`$allOperations: ({ args, query }) => query(args)`) is what Prisma charges for any',
  'query extension, whatever it does. Every candidate process creates the same Sextant instance, used or not.',
  pinned
    ? `Candidates run on core ${BENCH_CORE}; the PostgreSQL backends serving them and the OTLP sink on core ${SERVER_CORE}.`
    : '**Unpinned run** (taskset refused): the database server and the sink shared cores with the measured process.',
  '',
];
let overBudget = false;
/** Rounds of one candidate spread more than this (max − min over median): the machine was busy. */
const NOISY_SPREAD = 0.3;
const noisy: string[] = [];
for (const database of DATABASES) {
  const base = median(samples.get(key(database, 'bare'))!);
  lines.push(
    `### ${DATABASE_LABELS[database]}`,
    '',
    '| client | CPU µs/query | rounds: min – max | added µs | ratio |',
    '| --- | ---: | ---: | ---: | ---: |',
  );
  for (const candidate of CANDIDATES) {
    const rounds = samples.get(key(database, candidate))!;
    const cpu = median(rounds);
    if ((Math.max(...rounds) - Math.min(...rounds)) / cpu > NOISY_SPREAD) {
      noisy.push(`${CANDIDATE_LABELS[candidate]} (${DATABASE_LABELS[database].split(' ')[0]})`);
    }
    const added = cpu - base;
    if (candidate !== 'bare' && candidate !== 'empty' && added > BUDGET_MICROS) overBudget = true;
    lines.push(
      `| ${CANDIDATE_LABELS[candidate]} | ${formatMicros(cpu)} | ${formatMicros(Math.min(...rounds))} – ${formatMicros(Math.max(...rounds))} | ` +
        `${candidate === 'bare' ? '' : formatMicros(added)} | ${(cpu / base).toFixed(2)} |`,
    );
  }
  lines.push('');
}
if (overBudget)
  lines.push(`**Over the goal**: more than ${BUDGET_MICROS} µs added per query in this run.`, '');
if (noisy.length > 0) {
  const rows = DATABASES.length * CANDIDATES.length;
  lines.push(
    `**Noisy run**: in ${noisy.length === rows ? 'every row' : noisy.join(', ')}, the rounds spread by more than ${NOISY_SPREAD * 100}% of`,
    'their median, more than the differences this table is for: the instruction counts below are the measure to go by.',
    '',
  );
}

if (INSTRUCTIONS_NOTE) lines.push(INSTRUCTIONS_NOTE, '');
const markdown = lines.join('\n');
console.log(markdown);
if (process.env.BENCH_WRITE !== '0') writeSection('prisma', markdown);
