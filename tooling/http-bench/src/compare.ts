/**
 * Two revisions of one server variant, raced in one run: this checkout against another one (a
 * `git worktree` of the baseline commit, installed with `pnpm install`). Run-to-run noise on a
 * shared machine (±4 µs per request) is larger than most single changes; interleaving the two
 * revisions round after round, each round in fresh processes (so each pays its own warm-up and
 * its own V8 heuristics), makes the difference between them the result.
 *
 *   git worktree add /tmp/baseline <commit> && (cd /tmp/baseline && pnpm install --offline)
 *   pnpm --filter @sextant/http-bench compare nest-sextant /tmp/baseline
 *
 * BENCH_ROUNDS (default 5), BENCH_DURATION and BENCH_WARMUP (seconds) as for the bench. Prints
 * each round and the medians of server CPU per request; writes nothing.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { median, startOtlpSink } from '@sextant/bench';
import {
  LOAD_CORE,
  type LoadOptions,
  load,
  measure,
  pinSelf,
  SERVER_SCRIPT,
  startServer,
  stopServer,
} from './processes.ts';
import { parseVariant, type VariantName } from './variants.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const DURATION_S = Number(process.env.BENCH_DURATION ?? 5);
const WARMUP_S = Number(process.env.BENCH_WARMUP ?? 3);
const LOAD: LoadOptions = { connections: 100, pipelining: 1 };

const [variantArg, baselineArg] = process.argv.slice(2);
parseVariant(variantArg);
const variant = variantArg as VariantName;
if (baselineArg === undefined) {
  throw new Error('http-bench compare: usage: compare.ts <variant> <baseline checkout directory>');
}
const baselineScript = join(resolve(baselineArg), 'tooling/http-bench/src/server.ts');
if (!existsSync(baselineScript)) {
  throw new Error(
    `http-bench compare: ${baselineScript} does not exist: is ${baselineArg} a Sextant checkout?`,
  );
}
const revisions = { current: SERVER_SCRIPT, baseline: baselineScript };
type Revision = keyof typeof revisions;

pinSelf(LOAD_CORE);
const sink = await startOtlpSink();
const cpu: Record<Revision, number[]> = { current: [], baseline: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order: Revision[] = round % 2 === 0 ? ['baseline', 'current'] : ['current', 'baseline'];
    for (const revision of order) {
      const server = await startServer(variant, `${sink.url}/${revision}`, revisions[revision]);
      try {
        await load(server.url, WARMUP_S, LOAD);
        const sample = await measure(server, DURATION_S, LOAD);
        cpu[revision].push(sample.cpuMicrosPerRequest);
        console.log(
          `[compare] round ${round + 1}/${ROUNDS} ${revision}: ${sample.cpuMicrosPerRequest.toFixed(1)} µs CPU/req, ` +
            `${sample.requestsPerSecond.toFixed(0)} req/s, core ${(sample.coreBusy * 100).toFixed(0)}%`,
        );
      } finally {
        await stopServer(server);
      }
    }
  }
} finally {
  sink.child.kill();
}
const current = median(cpu.current);
const baseline = median(cpu.baseline);
console.log(
  `[compare] ${variant}, medians of ${ROUNDS} rounds: baseline ${baseline.toFixed(1)} µs, current ` +
    `${current.toFixed(1)} µs per request (${current - baseline >= 0 ? '+' : ''}${(current - baseline).toFixed(1)} µs, ` +
    `${(current / baseline).toFixed(3)}×)`,
);
