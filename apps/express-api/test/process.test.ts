import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { startApp } from '@sextant/testing/app-process';
import { createTestBackends } from 'job-store/testing';
import { afterAll, describe, expect, it } from 'vitest';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const backends = createTestBackends('express_process');
afterAll(() => backends.cleanup());

describe('express-api as its own process', () => {
  it('logs the port it got for PORT=0, serves, and exits by itself with code 0 on SIGTERM', async () => {
    const app = await startApp({ cwd, env: { ...backends.env, OTEL_TRACES_EXPORTER: 'none' } });
    try {
      expect(app.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(app.url).not.toMatch(/:0$/);
      const created = await fetch(`${app.url}/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'maxcut', edges: [[0, 1]] }),
      });
      expect(created.status).toBe(202);
      expect((await fetch(`${app.url}/health/ready`)).status).toBe(200);
      app.child.kill('SIGTERM');
      expect(await app.exited).toEqual({ code: 0, signal: null });
      expect(app.strayLines()).toEqual([]);
    } finally {
      await app.stop();
    }
  });

  // `Number('')` is 0 (a random port) and `Number('0x50')` 80: neither may start a server.
  it.each(['', 'abc', '0x50', '3000.5', '65536'])(
    'refuses PORT=%j: exits with code 1 after a fatal record naming the variable, the value and what is allowed',
    async (value) => {
      const child = spawn(process.execPath, ['--conditions=sextant-source', 'src/main.ts'], {
        cwd,
        env: { ...process.env, ...backends.env, OTEL_TRACES_EXPORTER: 'none', PORT: value },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const [code] = await once(child, 'exit');
      clearTimeout(timer);
      expect(code).toBe(1);
      const records = stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(records).toContainEqual(
        expect.objectContaining({
          level: 'fatal',
          port: value,
          msg: `PORT must be an integer from 0 to 65535, got ${JSON.stringify(value)}`,
        }),
      );
    },
  );
});
