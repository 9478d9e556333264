/**
 * Instructions per Prisma query, counted by valgrind's callgrind: a measure the machine's load does
 * not move, for the cost @sextant/prisma adds to a query when the timed bench (prisma.bench.ts)
 * cannot resolve it. Each candidate runs alone in its own process under callgrind (candidate.ts;
 * the PostgreSQL server and the OTLP sink are outside it, not counted). It warms up uninstrumented;
 * then, window after window, the counters are zeroed, a fixed number of `findUnique` queries run
 * one after the other (the sampled candidate's spans flushed to the sink inside the
 * window) and the counters are dumped. Reported: the instructions of all windows over their queries.
 *
 * Node runs with V8's --single-threaded: the optimising compiler and the garbage collector work on
 * the main thread, at points fixed by what the program does, instead of on background threads that
 * callgrind runs one at a time and whenever it gets to them, which moved a window's count by ±30%.
 * Prisma keeps optimising (and deoptimising) for tens of thousands of queries, so a window still
 * holds some compilation, the same for every candidate: the report also gives each window without
 * the self cost of V8's garbage collector and compilers. No full collection is forced before a
 * window (BENCH_COLLECT=1 does): after one, V8 throws away optimized code, and what runs once per
 * query (a span's path) then runs unoptimized through the window, which doubled the sampled
 * candidate's count. Instructions are not time: cache misses and the kernel's work (sockets) are
 * not in them.
 *
 *   pnpm --filter @sextant/prisma instructions [postgresql|sqlite]... [bare|empty|sampled|unsampled|one-in-ten|no-spans]...
 *
 * With no arguments, every candidate on both databases, two processes at a time (BENCH_JOBS).
 * BENCH_WARMUP_QUERIES (default 10000), BENCH_WINDOWS (default 4) and BENCH_QUERIES (queries per
 * window, default 400) set the counts; BENCH_KEEP_DUMPS=1 keeps callgrind's files, and
 * BENCH_PERF_MAP=1 has Node write /tmp/perf-<pid>.map, which names the JIT-compiled functions in
 * them (`callgrind_annotate` shows their addresses). Needs valgrind.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOtlpSink } from '../../../tooling/bench/harness.ts';
import {
  type BenchDatabases,
  CANDIDATE_LABELS,
  CANDIDATES,
  type CandidateName,
  DATABASE_LABELS,
  DATABASES,
  type DatabaseName,
  killCandidates,
  openBenchDatabases,
  specFor,
  startCandidate,
} from './protocol.ts';

const WARMUP = Number(process.env.BENCH_WARMUP_QUERIES ?? 10000);
const WINDOWS = Number(process.env.BENCH_WINDOWS ?? 4);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 400);
const JOBS = Number(process.env.BENCH_JOBS ?? 2);

const selected = process.argv.slice(2);
for (const arg of selected) {
  if (!(DATABASES as readonly string[]).includes(arg) && !(CANDIDATES as readonly string[]).includes(arg)) {
    throw new Error(
      `prisma instructions: unknown argument '${arg}'; expected some of ${[...DATABASES, ...CANDIDATES].join(', ')}`,
    );
  }
}
function pick<T extends string>(all: readonly T[]): T[] {
  const chosen = all.filter((name) => selected.includes(name));
  return chosen.length === 0 ? [...all] : chosen;
}

/**
 * Functions of V8's garbage collector and of its compilers (optimising, baseline, parser), by name:
 * their work lands in whichever window reaches a threshold, so it is reported apart.
 */
const GC_FUNCTION =
  /v8::internal::(Heap|Scaveng|MarkCompact|MinorMarkSweep|ConcurrentMarking|IncrementalMarking|Marking|MainMarking|RootMarking|Sweeper|Evacuat|RememberedSet|SlotSet|GCTracer|MemoryAllocator|PagedSpace|FreeList|LargeObjectSpace|ArrayBufferSweeper|IterateAndScavenge|InternalizedStringTableCleaner|HeapObject::SizeFromMap|\(anonymous namespace\)::IterateObjectCache)|BodyDescriptorBase::Iterate|::IterateBody<|heap::base::|cppgc::/;
const COMPILER_FUNCTION =
  /v8::internal::(compiler::|maglev::|turboshaft::|baseline::|interpreter::Bytecode(Generator|ArrayBuilder)|Compiler::|Parser|PreParser|Scanner|Zone|AstValueFactory|DeclarationScope)/;

interface WindowCount {
  total: number;
  gc: number;
  compiler: number;
}

/**
 * Instructions in callgrind's dump number `part` of the process (`cg.<pid>.<part>`): its totals,
 * and the self cost of the garbage collector's and the compilers' functions.
 */
function dumpedInstructions(dumpDir: string, pid: number, part: number): WindowCount {
  const name = `cg.${pid}.${part}`;
  const text = readFileSync(join(dumpDir, name), 'utf8');
  const totals = /^totals: (\d+)/m.exec(text);
  if (!totals) throw new Error(`prisma instructions: no totals in ${name}`);
  const count: WindowCount = { total: Number(totals[1]), gc: 0, compiler: 0 };
  let kind: 'gc' | 'compiler' | undefined;
  let callCost = false;
  for (const line of text.split('\n')) {
    if (callCost) {
      // The line after `calls=` is the callee's inclusive cost, not the function's own.
      callCost = false;
    } else if (line.startsWith('fn=')) {
      kind = GC_FUNCTION.test(line) ? 'gc' : COMPILER_FUNCTION.test(line) ? 'compiler' : undefined;
    } else if (line.startsWith('calls=')) {
      callCost = true;
    } else if (kind !== undefined && /^[-+*\d]/.test(line)) {
      count[kind] += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return count;
}

/** Instructions per query of each window. */
async function count(
  databases: BenchDatabases,
  database: DatabaseName,
  candidate: CandidateName,
  sinkUrl: string,
): Promise<WindowCount[]> {
  const dumpDir = mkdtempSync(join(tmpdir(), 'sextant-prisma-callgrind-'));
  const launcher = [
    'valgrind',
    '--quiet',
    '--tool=callgrind',
    '--compress-strings=no',
    // The warm-up runs uninstrumented, several times faster, so that it can be long enough for
    // V8 to optimize the span and export path (thousands of queries).
    '--instr-atstart=no',
    `--callgrind-out-file=${join(dumpDir, 'cg.%p')}`,
  ];
  const nodeFlags = [
    '--single-threaded',
    '--expose-gc',
    ...(process.env.BENCH_PERF_MAP ? ['--perf-basic-prof'] : []),
  ];
  // Under callgrind a query can take longer than the default 500 ms: the slow-query log stays off.
  const candidateProcess = await startCandidate(
    { ...specFor(databases, database, [candidate], sinkUrl), slowQueryLog: false },
    launcher,
    nodeFlags,
  );
  const pid = candidateProcess.child.pid!;
  const windows: WindowCount[] = [];
  try {
    await candidateProcess.run(candidate, WARMUP);
    execFileSync('callgrind_control', ['--instr=on', String(pid)], { stdio: 'ignore' });
    for (let window = 1; window <= WINDOWS; window++) {
      if (process.env.BENCH_COLLECT === '1') await candidateProcess.collectGarbage();
      execFileSync('callgrind_control', ['--zero', String(pid)], { stdio: 'ignore' });
      await candidateProcess.run(candidate, QUERIES);
      execFileSync('callgrind_control', ['--dump', String(pid)], { stdio: 'ignore' });
      windows.push(dumpedInstructions(dumpDir, pid, window));
    }
    return windows;
  } finally {
    await candidateProcess.stop();
    if (process.env.BENCH_KEEP_DUMPS)
      console.log(`${database} ${candidate}: callgrind files in ${dumpDir} (pid ${pid})`);
    else rmSync(dumpDir, { recursive: true, force: true });
  }
}

/** Runs `tasks`, at most `jobs` at a time. */
async function pooled<T>(tasks: Array<() => Promise<T>>, jobs: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await tasks[index]!();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  return results;
}

const kilo = (value: number) => `${(value / 1000).toFixed(1)} k`;
const signedKilo = (value: number) => `${value < 0 ? '−' : '+'}${kilo(Math.abs(value))}`;
const perQuery = (windows: WindowCount[], part: (window: WindowCount) => number) =>
  windows.reduce((sum, window) => sum + part(window), 0) / (windows.length * QUERIES);
/** What the queries themselves ran: everything but the garbage collector and the compilers. */
const ownWork = (window: WindowCount) => window.total - window.gc - window.compiler;

const sink = await startOtlpSink();
const databases = await openBenchDatabases();
// Interrupted: the PostgreSQL schema and the SQLite file go all the same.
process.once('SIGINT', () => {
  killCandidates();
  void databases.close().finally(() => process.exit(130));
});
try {
  const runs = pick(DATABASES).flatMap((database) =>
    pick(CANDIDATES).map((candidate) => ({ database, candidate })),
  );
  const counts = await pooled(
    runs.map(({ database, candidate }) => async () => {
      const windows = await count(databases, database, candidate, sink.url);
      console.log(
        `[prisma instructions] ${database} ${candidate}, per query in each window: ` +
          windows
            .map(
              (window) =>
                `${kilo(window.total / QUERIES)} (${kilo(ownWork(window) / QUERIES)} without GC and compilers)`,
            )
            .join(', '),
      );
      return windows;
    }),
    JOBS,
  );
  console.log(
    `\nInstructions per findUnique (callgrind, node --single-threaded): each candidate in its own process, ` +
      `${WARMUP} queries of warm-up, then ${WINDOWS} windows of ${QUERIES} queries` +
      (process.env.BENCH_COLLECT === '1' ? ', each after a full garbage collection' : '') +
      '. "Queries" leaves out the self cost of V8\'s garbage collector and compilers (by function name).',
  );
  for (const database of pick(DATABASES)) {
    console.log(`\n${DATABASE_LABELS[database]}`);
    const bare = counts[runs.findIndex((run) => run.database === database && run.candidate === 'bare')];
    runs.forEach((run, index) => {
      if (run.database !== database) return;
      const windows = counts[index]!;
      const total = perQuery(windows, (window) => window.total);
      const own = perQuery(windows, ownWork);
      const vsBare =
        bare === undefined || run.candidate === 'bare'
          ? ''
          : `; vs bare ${signedKilo(total - perQuery(bare, (window) => window.total))} in all, ` +
            `${signedKilo(own - perQuery(bare, ownWork))} in the queries`;
      console.log(
        `  ${CANDIDATE_LABELS[run.candidate]}: ${kilo(total)} per query in all (GC ${kilo(perQuery(windows, (window) => window.gc))}, ` +
          `compilers ${kilo(perQuery(windows, (window) => window.compiler))}), ${kilo(own)} in the queries${vsBare}`,
      );
    });
  }
} finally {
  await databases.close();
  sink.child.disconnect();
}
