/** The worker's own settings (`METRICS_PORT`, `WORKER_CONCURRENCY`): parsed, and acted on at start. */
import { runAppToExit, startApp } from '@sextant/testing/app-process';
import { createTestBackends } from 'job-store/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_METRICS_PORT,
  readWorkerSettings,
  WorkerConfigError,
} from '../src/settings.ts';
import { SOLVER_ENV, WORKER_CWD } from './fixtures.ts';

describe('readWorkerSettings', () => {
  it('uses the defaults when nothing is set', () => {
    expect(readWorkerSettings({})).toEqual({
      metricsPort: DEFAULT_METRICS_PORT,
      concurrency: DEFAULT_CONCURRENCY,
    });
  });

  // `METRICS_PORT=` in a .env or compose file means "not set", as for Sextant's own variables.
  it.each(['', ' ', '\t\n'])('takes the default for a blank value %j', (blank) => {
    expect(readWorkerSettings({ METRICS_PORT: blank, WORKER_CONCURRENCY: blank })).toEqual({
      metricsPort: DEFAULT_METRICS_PORT,
      concurrency: DEFAULT_CONCURRENCY,
    });
  });

  it('reads valid values, around surrounding whitespace', () => {
    expect(readWorkerSettings({ METRICS_PORT: '0', WORKER_CONCURRENCY: '1' })).toEqual({
      metricsPort: 0,
      concurrency: 1,
    });
    expect(readWorkerSettings({ METRICS_PORT: ' 65535 ', WORKER_CONCURRENCY: '100\n' })).toEqual({
      metricsPort: 65_535,
      concurrency: 100,
    });
  });

  it.each([
    ['METRICS_PORT', 'abc', 'METRICS_PORT must be an integer from 0 to 65535, got "abc"'],
    ['METRICS_PORT', '0x50', 'METRICS_PORT must be an integer from 0 to 65535, got "0x50"'],
    ['METRICS_PORT', '9464.5', 'METRICS_PORT must be an integer from 0 to 65535, got "9464.5"'],
    ['METRICS_PORT', '-1', 'METRICS_PORT must be an integer from 0 to 65535, got "-1"'],
    ['METRICS_PORT', '65536', 'METRICS_PORT must be an integer from 0 to 65535, got "65536"'],
    ['WORKER_CONCURRENCY', '0', 'WORKER_CONCURRENCY must be an integer from 1 to 100, got "0"'],
    ['WORKER_CONCURRENCY', '101', 'WORKER_CONCURRENCY must be an integer from 1 to 100, got "101"'],
    ['WORKER_CONCURRENCY', '1e2', 'WORKER_CONCURRENCY must be an integer from 1 to 100, got "1e2"'],
    ['WORKER_CONCURRENCY', ' four ', 'WORKER_CONCURRENCY must be an integer from 1 to 100, got " four "'],
  ])('refuses %s=%j, naming the variable, the value and what is allowed', (variable, value, message) => {
    let caught: unknown;
    try {
      readWorkerSettings({ [variable]: value });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(WorkerConfigError);
    expect(caught).toMatchObject({ variable, value, message });
  });
});

describe('the worker process', () => {
  const backends = createTestBackends('worker_settings');
  afterAll(() => backends.cleanup());

  it('starts with the default concurrency when WORKER_CONCURRENCY is blank', async () => {
    const worker = await startApp({
      cwd: WORKER_CWD,
      env: {
        ...backends.env,
        ...SOLVER_ENV,
        OTEL_TRACES_EXPORTER: 'none',
        // Blank METRICS_PORT would mean 9464, which another process may hold: 0 picks a free port.
        METRICS_PORT: '0',
        WORKER_CONCURRENCY: '',
      },
    });
    try {
      const ready = await worker.waitForRecord((record) => record.msg === 'worker ready');
      expect(ready.concurrency).toBe(DEFAULT_CONCURRENCY);
      expect(worker.records().filter((record) => record.level === 'fatal')).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it.each([
    ['WORKER_CONCURRENCY', '0'],
    ['METRICS_PORT', 'abc'],
    ['QUANTUM_TIMEOUT_MS', 'soon'],
  ])(
    'exits with code 1 after a fatal record for %s=%j, before opening the store',
    async (variable, value) => {
      const { code, records } = await runAppToExit({
        cwd: WORKER_CWD,
        env: { ...backends.env, OTEL_TRACES_EXPORTER: 'none', METRICS_PORT: '0', [variable]: value },
      });
      expect(code).toBe(1);
      expect(records).toContainEqual(
        expect.objectContaining({
          level: 'fatal',
          [variable]: value,
          msg: expect.stringContaining(variable),
        }),
      );
      expect(records.some((record) => /listening|ready/.test(String(record.msg)))).toBe(false);
    },
  );
});
