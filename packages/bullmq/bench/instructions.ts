/**
 * Instructions per job, counted by valgrind's callgrind: a measure the machine's load does not
 * move, for deciding whether a change to the job path helps when the timed bench cannot tell.
 * Each candidate runs in a process of its own under callgrind (Redis and the OTLP sink do not),
 * with the same producer and worker as the timed bench. Rounds of jobs warm it up uninstrumented;
 * then, for each counted round, the counters are zeroed, a round of jobs is enqueued (on a paused
 * queue) and processed, its spans are exported, and the counters are read. The fewest is reported.
 * Only the main thread's instructions count: V8's optimizing compiler and its concurrent marking
 * run on helper threads, in bursts. Instructions are not time (no cache misses, no kernel work,
 * nothing Redis does).
 *
 *   pnpm --filter @sextant/bullmq instructions bare sextant no-spans
 *
 * BENCH_JOBS (default 500) sets the jobs per round, BENCH_WARMUP_ROUNDS (default 20) and
 * BENCH_COUNTED_ROUNDS (default 5) the rounds before and while counting; BENCH_KEEP_DUMPS=1 keeps
 * callgrind's files and BENCH_PERF_MAP=1 has Node write /tmp/perf-<pid>.map, which names the
 * JIT-compiled functions in them. Needs valgrind and Redis (REDIS_URL, default
 * redis://127.0.0.1:6379).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOtlpSink } from '../../../tooling/bench/harness.ts';
import { CANDIDATE_NAMES, type CandidateName } from './candidates.ts';
import { startCandidate } from './processes.ts';

const JOBS = Number(process.env.BENCH_JOBS ?? 500);
const WARMUP_ROUNDS = Number(process.env.BENCH_WARMUP_ROUNDS ?? 20);
/**
 * A major garbage collection, and the optimized code V8 then throws away and compiles again (one
 * TurboFan compile can cost 100 million instructions), falls in some rounds and not others,
 * unlike anything a change to the job path does: the fewest is reported.
 */
const COUNTED_ROUNDS = Number(process.env.BENCH_COUNTED_ROUNDS ?? 5);

/** Instructions of the main thread (the event loop) in callgrind's last dump of the process. */
function dumpedInstructions(dumpDir: string, pid: number): number {
  const mainThread = new RegExp(`^cg\\.${pid}\\.(\\d+)-01$`);
  const latest = readdirSync(dumpDir)
    .map((name) => ({ name, dump: Number(mainThread.exec(name)?.[1] ?? -1) }))
    .filter(({ dump }) => dump >= 0)
    .sort((a, b) => a.dump - b.dump)
    .at(-1);
  if (latest === undefined) throw new Error('bullmq instructions: callgrind wrote no dump');
  const match = /^totals: (\d+)/m.exec(readFileSync(join(dumpDir, latest.name), 'utf8'));
  if (!match) throw new Error(`bullmq instructions: no totals in ${latest.name}`);
  return Number(match[1]);
}

async function instructionsPerJob(candidate: CandidateName, sinkUrl: string): Promise<number> {
  const dumpDir = mkdtempSync(join(tmpdir(), 'sextant-callgrind-'));
  const started = await startCandidate({
    candidate,
    processor: 'empty',
    sinkUrl,
    jobs: JOBS,
    phased: true,
    wrapper: {
      execPath: 'valgrind',
      args: [
        '--tool=callgrind',
        '--compress-strings=no',
        // Warm-up runs uninstrumented, several times faster: V8 takes thousands of jobs to
        // optimize every function a job goes through, and the count is of the steady state.
        '--instr-atstart=no',
        // The event loop's thread is what limits jobs/s; V8's compiler and concurrent marking run
        // on helper threads, in bursts that fall in one round and not the next.
        '--separate-threads=yes',
        `--callgrind-out-file=${join(dumpDir, 'cg.%p')}`,
      ],
    },
    nodeArgs: process.env.BENCH_PERF_MAP ? ['--perf-basic-prof'] : [],
  });
  const pid = String(started.child.pid);
  const control = (...args: string[]) =>
    execFileSync('callgrind_control', [...args, pid], { stdio: 'ignore' });
  try {
    for (let round = 0; round < WARMUP_ROUNDS; round++) await started.round();
    control('--instr=on');
    const perJob: number[] = [];
    for (let round = 0; round < COUNTED_ROUNDS; round++) {
      control('--zero');
      await started.round();
      control('--dump');
      perJob.push(dumpedInstructions(dumpDir, started.child.pid!) / JOBS);
    }
    console.log(
      `${candidate}: ${perJob.map(Math.round).join(', ')} instructions per job in the counted rounds`,
    );
    return Math.min(...perJob);
  } finally {
    started.child.kill('SIGKILL');
    await started.close();
    if (process.env.BENCH_KEEP_DUMPS) console.log(`${candidate}: callgrind files in ${dumpDir}`);
    else rmSync(dumpDir, { recursive: true, force: true });
  }
}

const requested = process.argv.slice(2);
for (const name of requested) {
  if (!(CANDIDATE_NAMES as readonly string[]).includes(name)) {
    throw new Error(`bullmq instructions: unknown candidate "${name}"; one of ${CANDIDATE_NAMES.join(', ')}`);
  }
}
const sink = await startOtlpSink();
try {
  for (const candidate of (requested.length > 0 ? requested : CANDIDATE_NAMES) as CandidateName[]) {
    const perJob = await instructionsPerJob(candidate, sink.url);
    console.log(`${candidate}: ${Math.round(perJob)} instructions per job`);
  }
} finally {
  sink.child.disconnect();
}
