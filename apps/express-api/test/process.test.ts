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
});
