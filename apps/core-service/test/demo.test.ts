import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);

it('`pnpm demo` serves real requests and prints traces, logs, metrics and health', async () => {
  const { stdout } = await run(process.execPath, ['--conditions=sextant-source', 'src/demo.ts'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, PORT: '0' },
  });
  expect(stdout).toMatch(/GET \/orders\/1 -> 200 {2}trace 4bf92f3577b34da6a3ce929d0e0e4736/);
  expect(stdout).toContain('GET /fail -> 500');
  // The continued trace shows the server span with its child span from traced().
  expect(stdout).toMatch(
    /trace 4bf92f3577b34da6a3ce929d0e0e4736\n {4}GET \/orders\/:id \([\d.]+ ms, status 0\)\n {6}└ orders\.load/,
  );
  expect(stdout).toMatch(/GET \/fail \([\d.]+ ms, status 2\)/);
  const logLines = stdout.split('\n').filter((line) => line.trim().startsWith('{'));
  expect(logLines.length).toBeGreaterThan(0);
  for (const line of logLines) {
    const record = JSON.parse(line) as Record<string, unknown>;
    expect(record.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(record.request_id).toBeTypeOf('string');
  }
  expect(stdout).toMatch(/http_route="\/orders\/:id",http_response_status_code="200"} 2/);
  expect(stdout).toMatch(/http_route="_unmatched",http_response_status_code="404"} 1/);
  expect(stdout).toMatch(/\/health\/ready -> 200/);
});
