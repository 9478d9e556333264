/**
 * Jobs per second through a real Redis (REDIS_URL, default redis://127.0.0.1:6379), bare BullMQ
 * against BullMQ with Sextant's telemetry option (and its worker observer), with spans exported
 * over OTLP/protobuf to a local sink. Each candidate runs in a fresh process of its own, round
 * after round, the order rotated, so that no candidate's code paths shape another's optimized code
 * and a noisy neighbour slows all alike. A process warms up, then runs a few rounds of JOBS jobs
 * (enqueued with `add`, PRODUCER_WINDOW in flight, while the worker processes them); its median
 * round counts, and the median process is reported. Two processors: one that does nothing (the
 * worst case for any instrumentation) and one that makes a PostgreSQL query (DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test), as a worker that writes its result would. Writes the
 * bullmq section of docs/benchmarks.md.
 */
import { machineLine, median, startOtlpSink, writeSection } from '../../../tooling/bench/harness.ts';
import {
  type CandidateName,
  CONCURRENCY,
  PRODUCER_WINDOW,
  type ProcessorName,
  type RoundResult,
} from './candidates.ts';
import { startCandidate } from './processes.ts';

const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
const PROCESSES = Number(process.env.BENCH_PROCESSES ?? 5);
const WARMUP_ROUNDS = 10;
const MEASURED_ROUNDS = 5;
const GOAL_RATIO = 0.95;

interface Group {
  processor: ProcessorName;
  title: string;
  candidates: Array<{ name: CandidateName; label: string }>;
}

const ONE_IN_TEN_LABEL =
  'BullMQ + `@sextant/bullmq`, 1 job in 10 traced (sampler `parentbased_traceidratio`, ratio 0.1)';

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
    ],
  },
  {
    processor: 'postgres',
    title: 'A processor that makes one PostgreSQL query (`SELECT $1::int`, a pool of 16)',
    candidates: [
      { name: 'bare', label: 'BullMQ, no telemetry' },
      { name: 'sextant', label: 'BullMQ + `@sextant/bullmq`' },
      { name: 'one-in-ten', label: ONE_IN_TEN_LABEL },
    ],
  },
];

async function sampleProcess(
  candidate: CandidateName,
  processor: ProcessorName,
  sinkUrl: string,
): Promise<RoundResult> {
  const started = await startCandidate({ candidate, processor, sinkUrl, jobs: JOBS });
  try {
    for (let round = 0; round < WARMUP_ROUNDS; round++) await started.round();
    const rounds: RoundResult[] = [];
    for (let round = 0; round < MEASURED_ROUNDS; round++) rounds.push(await started.round());
    return {
      jobsPerSecond: median(rounds.map((round) => round.jobsPerSecond)),
      cpuMicrosPerJob: median(rounds.map((round) => round.cpuMicrosPerJob)),
    };
  } finally {
    await started.close();
  }
}

const sink = await startOtlpSink();
const sections: string[] = [
  '## @sextant/bullmq',
  '',
  `Jobs per second through a real Redis: ${JOBS} jobs per round (\`add\`, ${PRODUCER_WINDOW} in flight, while a worker of concurrency ${CONCURRENCY} processes them) in one process, producer and worker. Each candidate runs in ${PROCESSES} fresh processes, interleaved; each process warms up for ${WARMUP_ROUNDS} rounds and counts the median of ${MEASURED_ROUNDS}; the median process is shown. Spans are exported over OTLP/protobuf to a local sink.`,
  '',
];
const verdicts: string[] = [];
try {
  for (const group of GROUPS) {
    const samples = new Map(group.candidates.map(({ name }) => [name, [] as RoundResult[]]));
    for (let index = 0; index < PROCESSES; index++) {
      // Rotating the order too: none always runs right after another's backlog.
      const order = group.candidates.map(
        (_, offset) => group.candidates[(index + offset) % group.candidates.length]!,
      );
      for (const { name } of order)
        samples.get(name)!.push(await sampleProcess(name, group.processor, sink.url));
    }
    const rows = group.candidates.map(({ name, label }) => ({
      name,
      label,
      rate: median(samples.get(name)!.map((sample) => sample.jobsPerSecond)),
      cpu: median(samples.get(name)!.map((sample) => sample.cpuMicrosPerJob)),
    }));
    const bare = rows.find((row) => row.name === 'bare')!;
    const sextant = rows.find((row) => row.name === 'sextant')!;
    sections.push(
      `### ${group.title}`,
      '',
      '| candidate | jobs/s | CPU µs per job (producer + worker) | jobs/s vs bare |',
      '| --- | ---: | ---: | ---: |',
      ...rows.map(
        (row) =>
          `| ${row.label} | ${row.rate.toFixed(0)} | ${row.cpu.toFixed(0)} | ${(row.rate / bare.rate).toFixed(3)} |`,
      ),
      '',
    );
    const verdict = (row: { rate: number }) => {
      const ratio = row.rate / bare.rate;
      return `${ratio.toFixed(3)} of bare jobs/s, ${ratio >= GOAL_RATIO ? 'within' : '**over**'} the goal`;
    };
    const oneInTen = rows.find((row) => row.name === 'one-in-ten')!;
    verdicts.push(
      `${group.title.split(' (')[0]}: ${verdict(sextant)} with every job traced; ${verdict(oneInTen)} with 1 in 10.`,
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
