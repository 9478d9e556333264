import { fileURLToPath } from 'node:url';
import type { AppProcess } from '@sextant/testing/app-process';
import { expect } from 'vitest';

/** What the worker's end-to-end tests share: where the two apps live, a small problem, a fast provider. */
export const API_CWD = fileURLToPath(new URL('../../express-api', import.meta.url));
export const WORKER_CWD = fileURLToPath(new URL('..', import.meta.url));
export { SQUARE_JOB as SQUARE } from '@sextant/testing/http-conformance';
// A fast, deterministic simulated provider: the tests are about the path, not the solver.
export const SOLVER_ENV = { QUANTUM_QUEUE_MS: '5', QUANTUM_LATENCY_MS: '10', QUANTUM_FAILURE_RATE: '0' };

/**
 * What a crash leaves on stderr. Node 24 does not warn about an unhandled rejection and go on: it
 * prints the error (its stack, or `[UnhandledPromiseRejection: ...]` and the
 * `triggerUncaughtException` source line for a non-Error) and the `Node.js vX` footer, then exits
 * with code 1. `Unhandled` also catches ioredis' `Unhandled error event`, written when a
 * connection's error has no listener.
 */
const CRASH_TEXT: readonly RegExp[] = [
  /Unhandled/i,
  /triggerUncaughtException/,
  /^\s+at \S/m, // a stack frame
  /^Node\.js v\d+/m,
];

/** Fails if `stderr` shows a crash or an unhandled error (see {@link CRASH_TEXT}). */
export function expectNoCrashOutput(stderr: string): void {
  for (const pattern of CRASH_TEXT) {
    expect(stderr, `stderr matches ${pattern}:\n${stderr.slice(-2000)}`).not.toMatch(pattern);
  }
}

/**
 * Fails unless every app is still running (it has not exited, by itself or by a signal) and
 * `stderr` shows no crash: what "survived the outage" means for a process.
 */
export function expectRunning(apps: AppProcess[], stderr: string): void {
  for (const app of apps) {
    const { exitCode, signalCode } = app.child;
    expect({ exitCode, signalCode }, `${app.url} exited; stderr:\n${stderr.slice(-2000)}`).toEqual({
      exitCode: null,
      signalCode: null,
    });
  }
  expectNoCrashOutput(stderr);
}
