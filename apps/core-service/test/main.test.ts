import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
// Relative, not `@sextant/testing`: this template depends on `@sextant/core` alone.
import { startApp } from '../../../tooling/testing/app-process.ts';
import { describeStartupConformance } from '../../../tooling/testing/startup-conformance.ts';

const cwd = fileURLToPath(new URL('..', import.meta.url));

describeStartupConformance('core-service', { cwd });

it('logs the port it listens on for PORT=0, not the 0 it was given, and serves there', async () => {
  const app = await startApp({ cwd, env: { OTEL_TRACES_EXPORTER: 'none', PORT: '0' } });
  try {
    expect(app.url).not.toMatch(/:0$/);
    const response = await fetch(`${app.url}/orders/7`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ id: '7', total: 42 });
    app.child.kill('SIGTERM');
    expect(await app.exited).toEqual({ code: 0, signal: null });
    expect(app.strayLines()).toEqual([]);
  } finally {
    await app.stop();
  }
});
