/**
 * Instructions per request, counted by valgrind's callgrind: a measure the machine's load does not
 * move, for deciding whether a change to the request path helps when the timed race cannot tell.
 * Each variant runs under callgrind (the OTLP sink and the load generator do not); after a warm-up
 * the counters are zeroed, a fixed number of requests is served and their spans are flushed, and
 * the counters are read. Instructions are not time (no cache misses, no kernel work): the timed
 * race (`pnpm bench`) stays the measure of overhead; this one compares revisions.
 *
 *   pnpm --filter @sextant/http-bench instructions express-bare express-sextant
 *
 * BENCH_REQUESTS (default 2000), BENCH_WARMUP_REQUESTS (default 3000) and BENCH_CONNECTIONS (default
 * 100, as the race) set the load;
 * BENCH_KEEP_DUMPS=1 keeps callgrind's files, and BENCH_PERF_MAP=1 has Node write
 * /tmp/perf-<pid>.map, which names the JIT-compiled functions in them. BENCH_CHECKOUT=<directory>
 * counts another checkout's servers (a `git worktree` of a baseline, installed), for an A/B. Needs valgrind.
 * The peer stacks run too slowly under callgrind for the load's 60 s request timeout (seen on
 * 2026-11-26 with express-peer): the bare and Sextant variants are the ones this is for.
 */
import { execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startOtlpSink } from '@sextant/bench';
import autocannon from 'autocannon';
import { PATH, SERVER_ENV, SERVER_SCRIPT } from './processes.ts';
import { type BenchMessage, parseVariant, type ServerMessage, type VariantName } from './variants.ts';

const WARMUP = Number(process.env.BENCH_WARMUP_REQUESTS ?? 3000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
// As many as the timed race keeps open: how many requests share a turn of the event loop matters.
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 100);
const serverScript = process.env.BENCH_CHECKOUT
  ? join(resolve(process.env.BENCH_CHECKOUT), 'tooling/http-bench/src/server.ts')
  : SERVER_SCRIPT;

async function drive(url: string, amount: number): Promise<void> {
  const result = await autocannon({ url: `${url}${PATH}`, connections: CONNECTIONS, amount, timeout: 60 });
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`http-bench instructions: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
  }
}

/** Instructions in callgrind's last dump of the process. */
function dumpedInstructions(dumpDir: string, pid: number): number {
  const dumps = readdirSync(dumpDir)
    .filter((name) => name.startsWith(`cg.${pid}.`))
    .sort();
  const latest = dumps.at(-1);
  if (latest === undefined) throw new Error('http-bench instructions: callgrind wrote no dump');
  const match = /^totals: (\d+)/m.exec(readFileSync(join(dumpDir, latest), 'utf8'));
  if (!match) throw new Error(`http-bench instructions: no totals in ${latest}`);
  return Number(match[1]);
}

async function instructionsPerRequest(variant: VariantName, sinkUrl: string): Promise<number> {
  const dumpDir = mkdtempSync(join(tmpdir(), 'sextant-callgrind-'));
  const child = fork(serverScript, [variant, sinkUrl], {
    execPath: 'valgrind',
    execArgv: [
      '--tool=callgrind',
      '--compress-strings=no',
      `--callgrind-out-file=${join(dumpDir, 'cg.%p')}`,
      process.execPath,
      '--conditions=sextant-source',
      ...(process.env.BENCH_PERF_MAP ? ['--perf-basic-prof'] : []),
    ],
    env: SERVER_ENV,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const request = async (message: BenchMessage, reply: ServerMessage['type']) => {
    child.send(message);
    for (;;) {
      const [answer] = (await once(child, 'message')) as [ServerMessage];
      if (answer.type === reply) return;
    }
  };
  try {
    const [ready] = (await once(child, 'message')) as [ServerMessage];
    if (ready.type !== 'ready') throw new Error(`http-bench instructions: ${variant} sent ${ready.type}`);
    const url = `http://127.0.0.1:${ready.port}`;
    await drive(url, WARMUP);
    await request({ type: 'flush' }, 'flushed');
    execFileSync('callgrind_control', ['--zero', String(child.pid)], { stdio: 'ignore' });
    await drive(url, REQUESTS);
    await request({ type: 'flush' }, 'flushed');
    execFileSync('callgrind_control', ['--dump', String(child.pid)], { stdio: 'ignore' });
    return dumpedInstructions(dumpDir, child.pid!) / REQUESTS;
  } finally {
    child.kill('SIGKILL');
    if (process.env.BENCH_KEEP_DUMPS) console.log(`${variant}: callgrind files in ${dumpDir}`);
    else rmSync(dumpDir, { recursive: true, force: true });
  }
}

const variants = process.argv.slice(2).map((arg) => {
  parseVariant(arg);
  return arg as VariantName;
});
if (variants.length === 0) throw new Error('http-bench instructions: usage: instructions.ts <variant>...');
const sink = await startOtlpSink();
try {
  for (const variant of variants) {
    const perRequest = await instructionsPerRequest(variant, `${sink.url}/${variant}`);
    console.log(`${variant}: ${Math.round(perRequest)} instructions per request`);
  }
} finally {
  sink.child.kill();
}
