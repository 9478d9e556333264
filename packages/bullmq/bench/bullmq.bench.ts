/**
 * Jobs per second through a real Redis (REDIS_URL, default redis://127.0.0.1:6379): bare BullMQ,
 * BullMQ with Sextant's telemetry option (and its worker observer), and the peer stack (peer.ts),
 * with spans exported over OTLP/protobuf to a local sink. Each candidate runs in a fresh process of
 * its own, so that no candidate's code paths shape another's optimized code; all of a table's
 * candidates run at once and take turns, round by round, the order rotated, so that a drift in the
 * machine's speed slows all alike. A round is JOBS jobs (enqueued with `add`, PRODUCER_WINDOW in
 * flight, while the worker processes them). Two processors: one that does nothing (the worst case
 * for any instrumentation) and one that makes a PostgreSQL query (DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test), as a worker that writes its result would. Writes the
 * bullmq section of docs/benchmarks.md.
 */
import { createRequire } from 'node:module';
import { machineLine, median, startOtlpSink, writeSection } from '../../../tooling/bench/harness.ts';
import { type CandidateName, CONCURRENCY, PRODUCER_WINDOW, type ProcessorName } from './candidates.ts';
import type { MeasuredRound } from './child.ts';
import { type CandidateProcess, startCandidate } from './processes.ts';

const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
const PROCESSES = Number(process.env.BENCH_PROCESSES ?? 5);
const WARMUP_ROUNDS = 10;
const MEASURED_ROUNDS = 8;
const GOAL_RATIO = 0.95;

interface Group {
  processor: ProcessorName;
  title: string;
  candidates: Array<{ name: CandidateName; label: string }>;
}

const ONE_IN_TEN_LABEL =
  'BullMQ + `@sextant/bullmq`, 1 job in 10 traced (sampler `parentbased_traceidratio`, ratio 0.1)';
const PEER_LABEL =
  "BullMQ + `bullmq-otel` (BullMQ's OpenTelemetry add-on, metrics on) on the OpenTelemetry Node SDK";

const GROUPS: Group[] = [
  {
    processor: 'empty',
    title: 'A processor that does nothing',
    candidates: [
      { name: 'bare', label: 'BullMQ, no telemetry' },
      {
        name: 'do-nothing',
        label: "BullMQ + a do-nothing `telemetry` option (BullMQ's own telemetry code path)",
      },
      { name: 'sextant', label: 'BullMQ + `@sextant/bullmq`' },
      { name: 'one-in-ten', label: ONE_IN_TEN_LABEL },
      {
        name: 'no-spans',
        label: 'BullMQ + `@sextant/bullmq`, `spanOperations: []` (metrics and context, no spans)',
      },
      { name: 'peer', label: PEER_LABEL },
    ],
  },
  {
    processor: 'postgres',
    title: 'A processor that makes one PostgreSQL query (`SELECT $1::int`, a pool of 16)',
    candidates: [
      { name: 'bare', label: 'BullMQ, no telemetry' },
      { name: 'sextant', label: 'BullMQ + `@sextant/bullmq`' },
      { name: 'one-in-ten', label: ONE_IN_TEN_LABEL },
      { name: 'peer', label: PEER_LABEL },
    ],
  },
];

/** One candidate's rounds in one set of processes. */
interface SetResult extends MeasuredRound {
  /** The median, over the set's cycles, of this candidate's jobs/s over bare's in the same cycle. */
  ratioToBare: number;
}

/**
 * One fresh process per candidate of the group, all started together; after the warm-up, each
 * cycle runs one round of every candidate, in an order rotated from cycle to cycle, so that all
 * are measured across the same stretch of time: this machine's speed drifts by tens of percent
 * over seconds, which moved whole candidates of the earlier, one-process-after-another table by
 * up to 30%. The processes keep the candidates' code apart (no candidate's code paths shape
 * another's optimized code); an idle worker waits on a blocking Redis call, costing nothing.
 */
async function sampleSet(group: Group, sinkUrl: string): Promise<Map<CandidateName, SetResult>> {
  const started = new Map<CandidateName, CandidateProcess>();
  try {
    for (const { name } of group.candidates) {
      started.set(
        name,
        await startCandidate({ candidate: name, processor: group.processor, sinkUrl, jobs: JOBS }),
      );
    }
    const rounds = new Map(group.candidates.map(({ name }) => [name, [] as MeasuredRound[]]));
    for (let cycle = 0; cycle < WARMUP_ROUNDS + MEASURED_ROUNDS; cycle++) {
      for (let i = 0; i < group.candidates.length; i++) {
        const { name } = group.candidates[(i + cycle) % group.candidates.length]!;
        const round = await started.get(name)!.round();
        if (cycle >= WARMUP_ROUNDS) rounds.get(name)!.push(round);
      }
    }
    const bare = rounds.get('bare')!;
    return new Map(
      group.candidates.map(({ name }) => {
        const own = rounds.get(name)!;
        return [
          name,
          {
            jobsPerSecond: median(own.map((round) => round.jobsPerSecond)),
            cpuMicrosPerJob: median(own.map((round) => round.cpuMicrosPerJob)),
            spansPerJob: median(own.map((round) => round.spansPerJob)),
            ratioToBare: median(own.map((round, cycle) => round.jobsPerSecond / bare[cycle]!.jobsPerSecond)),
          },
        ];
      }),
    );
  } finally {
    for (const candidate of started.values()) await candidate.close();
  }
}

const BULLMQ_OTEL_VERSION = (
  createRequire(import.meta.url)('bullmq-otel/package.json') as { version: string }
).version;

const sink = await startOtlpSink();
const sections: string[] = [
  '## @sextant/bullmq',
  '',
  `Jobs per second through a real Redis: ${JOBS} jobs per round (\`add\`, ${PRODUCER_WINDOW} in flight, while a worker of concurrency ${CONCURRENCY} processes them) in one process, producer and worker. Each candidate runs in a fresh process of its own, all of a table's candidates at once, in ${PROCESSES} such sets; after ${WARMUP_ROUNDS} cycles of warm-up, each of ${MEASURED_ROUNDS} cycles runs one round of every candidate in an order rotated from cycle to cycle, so that all are measured across the same stretch of time (this machine's speed drifts by tens of percent over seconds). jobs/s and CPU are the median set's medians; "jobs/s vs bare" is the median over sets of the median, over cycles, of the candidate's jobs/s over bare's in the same cycle. Spans are exported over OTLP/protobuf to a local sink, batched alike (queue 2048, batch 512, Sextant's defaults, which are the OpenTelemetry SDK's); a candidate process that dropped a span fails the bench. The peer stack is what a BullMQ user sets up without Sextant: \`bullmq-otel\` ${BULLMQ_OTEL_VERSION} with \`enableMetrics: true\`, on \`NodeSDK\` with a Prometheus reader that nothing scrapes during a round, as Sextant's metrics are not.`,
  '',
];
const verdicts: string[] = [];
try {
  for (const group of GROUPS) {
    const sets: Array<Map<CandidateName, SetResult>> = [];
    for (let index = 0; index < PROCESSES; index++) sets.push(await sampleSet(group, sink.url));
    const rows = group.candidates.map(({ name, label }) => {
      const results = sets.map((set) => set.get(name)!);
      return {
        name,
        label,
        rate: median(results.map((result) => result.jobsPerSecond)),
        cpu: median(results.map((result) => result.cpuMicrosPerJob)),
        spans: median(results.map((result) => result.spansPerJob)),
        ratio: median(results.map((result) => result.ratioToBare)),
      };
    });
    const sextant = rows.find((row) => row.name === 'sextant')!;
    sections.push(
      `### ${group.title}`,
      '',
      '| candidate | jobs/s | CPU µs per job (producer + worker) | spans per job | jobs/s vs bare |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows.map(
        (row) =>
          `| ${row.label} | ${row.rate.toFixed(0)} | ${row.cpu.toFixed(0)} | ${row.spans.toFixed(1)} | ${row.ratio.toFixed(3)} |`,
      ),
      '',
    );
    const verdict = (row: { ratio: number }) => {
      const ratio = row.ratio;
      return `${ratio.toFixed(3)} of bare jobs/s, ${ratio >= GOAL_RATIO ? 'within' : '**over**'} the goal`;
    };
    const oneInTen = rows.find((row) => row.name === 'one-in-ten')!;
    const peer = rows.find((row) => row.name === 'peer')!;
    verdicts.push(
      `${group.title.split(' (')[0]}: ${verdict(sextant)} with every job traced; ${verdict(oneInTen)} with 1 in 10; ` +
        `the peer stack ${peer.ratio.toFixed(3)} of bare jobs/s, so Sextant with every job traced runs ${(sextant.ratio / peer.ratio).toFixed(2)}× the peer's jobs/s.`,
    );
  }
} finally {
  sink.child.disconnect();
}
sections.push(
  `Goal: at most ${Math.round((1 - GOAL_RATIO) * 100)}% fewer jobs/s. ${verdicts.join(' ')}`,
  '',
  `Reproduce: \`pnpm --filter @sextant/bullmq bench\` (needs Redis and PostgreSQL). \`pnpm --filter @sextant/bullmq instructions\` counts instructions per job with callgrind instead. ${machineLine()}.`,
);
const markdown = sections.join('\n');
writeSection('bullmq', markdown);
console.log(markdown);
