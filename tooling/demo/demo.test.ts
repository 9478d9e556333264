import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);

it('`pnpm demo` runs the API and the worker, and prints one trace per request, correlated logs and metrics', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, DEMO_JOBS: '12' };
  delete env.DATABASE_URL; // the demo's promise: an embedded SQLite file, nothing to set up
  const { stdout } = await run(process.execPath, ['--conditions=sextant-source', 'demo.ts'], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    env,
    timeout: 170_000,
    maxBuffer: 16 * 1024 * 1024,
  });

  expect(stdout).toContain('Jobs finished: 12/12');
  // Refused by the API with what is wrong, in the shape of all its error answers.
  const refused = /^An invalid problem is refused: 400 (.*)$/m.exec(stdout);
  expect(refused, 'the refused request is printed').not.toBeNull();
  expect(JSON.parse(refused![1]!)).toEqual({
    statusCode: 400,
    error: 'Bad Request',
    message: expect.stringContaining('"type" must be "maxcut" or "qubo"'),
  });
  // Each printed trace spans both processes: server span, enqueue, job attempt, database, quantum job.
  const traces = stdout.split('\n  trace ').slice(1);
  expect(traces.length).toBeGreaterThanOrEqual(1);
  for (const trace of traces) {
    expect(trace).toMatch(/POST \/jobs {2}\[express-api/);
    expect(trace).toMatch(/add quantum-jobs {2}\[express-api/);
    expect(trace).toMatch(/process quantum-jobs {2}\[worker/);
    expect(trace).toMatch(/update Job {2}\[worker/);
    expect(trace).toMatch(/quantum\.job maxcut {2}\[worker/);
  }

  const records = stdout
    .split('\n')
    .filter((line) => /^ {2}(api|worker) +\{/.test(line))
    .map((line) => JSON.parse(line.replace(/^ {2}(api|worker) +/, '')) as Record<string, unknown>);
  expect(new Set(records.map((record) => record.service))).toEqual(new Set(['express-api', 'worker']));
  expect(new Set(records.map((record) => record.request_id)).size).toBe(1);
  expect(new Set(records.map((record) => record.trace_id)).size).toBe(1);

  // Scraped from both processes: every job counted once by the API and once by the worker.
  const count = (pattern: RegExp) =>
    [...stdout.matchAll(pattern)].reduce((sum, match) => sum + Number(match[1]), 0);
  expect(count(/http_route="\/jobs",http_response_status_code="202"\} (\d+)/g)).toBe(12);
  expect(count(/quantum_jobs_total\{[^}]*\} (\d+)/g)).toBe(12);
  expect(stdout).toMatch(/quantum_circuit_breaker_state\{quantum_provider="simulated-annealer"\} [012]/);
});
