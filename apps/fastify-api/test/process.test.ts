import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createTestBackends } from 'job-store/testing';
import { afterAll, describe, expect, it } from 'vitest';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const backends = createTestBackends('fastify_process');
afterAll(() => backends.cleanup());

/** Runs `src/main.ts` as `pnpm start` does, until it exits by itself (or is killed after 20 s). */
async function run(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--conditions=sextant-source', 'src/main.ts'], {
    cwd,
    env: { ...process.env, ...backends.env, OTEL_TRACES_EXPORTER: 'none', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  const records = stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { code, records };
}

describe('fastify-api as its own process', () => {
  // `Number('')` is 0 (a random port) and `Number('0x50')` 80: neither may start a server.
  it.each(['', 'abc', '0x50', '3000.5', ' 3000', '-1', '65536'])(
    'refuses PORT=%j: exits with code 1 after a fatal record naming the variable, the value and what is allowed',
    async (value) => {
      const { code, records } = await run({ PORT: value });
      expect(code).toBe(1);
      expect(records).toContainEqual(
        expect.objectContaining({
          level: 'fatal',
          port: value,
          msg: `PORT must be an integer from 0 to 65535, got ${JSON.stringify(value)}`,
        }),
      );
      expect(records.some((record) => /listening/.test(String(record.msg)))).toBe(false);
    },
  );
});
