import { fileURLToPath } from 'node:url';
import { runAppToExit, startApp } from '@sextant/testing/app-process';
import { createTestBackends } from 'job-store/testing';
import { afterAll, describe, expect, it } from 'vitest';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const backends = createTestBackends('nest_platform');
afterAll(() => backends.cleanup());

describe('NEST_PLATFORM', () => {
  // A blank value counts as unset, as everywhere in Sextant; spaces around a value do not count.
  it.each([
    ['', 'express'],
    ['  ', 'express'],
    [' fastify ', 'fastify'],
  ])('NEST_PLATFORM=%j runs on %s', async (value, platform) => {
    const app = await startApp({
      cwd,
      entry: 'dist/main.js',
      env: { ...backends.env, OTEL_TRACES_EXPORTER: 'none', NEST_PLATFORM: value },
    });
    try {
      const listening = app.records().find((record) => record.msg === 'nest-api listening');
      expect(listening).toMatchObject({ platform });
      expect((await fetch(`${app.url}/health`)).status).toBe(200);
    } finally {
      await app.stop();
    }
  });

  it('refuses any other value: exits with code 1 after a fatal record naming the value and what is allowed', async () => {
    const { code, records } = await runAppToExit({
      cwd,
      entry: 'dist/main.js',
      env: { ...backends.env, OTEL_TRACES_EXPORTER: 'none', PORT: '0', NEST_PLATFORM: 'koa' },
    });
    expect(code).toBe(1);
    expect(records).toContainEqual(
      expect.objectContaining({
        level: 'fatal',
        platform: 'koa',
        msg: 'NEST_PLATFORM must be "express" or "fastify", got "koa"',
      }),
    );
    expect(records.some((record) => /listening/.test(String(record.msg)))).toBe(false);
  });
});
