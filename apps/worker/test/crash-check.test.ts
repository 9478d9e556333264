/**
 * The outage tests' "still running, no crash" check, against real crashes: a process that leaves
 * a rejection unhandled (an Error, and a non-Error) or throws must fail it, by its exit and by what
 * Node 24 wrote to stderr.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AppProcess, startApp } from '@sextant/testing/app-process';
import { afterAll, describe, expect, it } from 'vitest';
import { expectNoCrashOutput, expectRunning } from './fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'sextant-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A process that says it listens (as the apps do), keeps running, and runs `crash` after 100 ms. */
async function start(name: string, crash: string): Promise<{ app: AppProcess; stderr: () => string }> {
  const entry = join(dir, `${name}.mjs`);
  writeFileSync(
    entry,
    `console.log(JSON.stringify({ msg: 'listening', port: 1 }));
setInterval(() => {}, 1000);
setTimeout(async () => { ${crash} }, 100);
`,
  );
  const app = await startApp({ cwd: dir, entry });
  let stderr = '';
  app.child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  return { app, stderr: () => stderr };
}

describe('expectRunning', () => {
  it('passes for a process that runs and wrote nothing to stderr', async () => {
    const { app, stderr } = await start('healthy', '');
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      expectRunning([app], stderr());
    } finally {
      await app.stop();
    }
  });

  it.each([
    ['an unhandled rejection with an Error', "Promise.reject(new Error('boom'));"],
    ['an unhandled rejection with a string', "Promise.reject('boom');"],
    ['an uncaught exception', "throw new Error('boom');"],
  ])('fails after %s', async (_label, crash) => {
    const { app, stderr } = await start(`crash-${crash.length}`, crash);
    const exited = await app.exited;
    expect(exited.code).not.toBe(0);
    // Each half on its own: the exit, and what Node wrote before exiting.
    expect(() => expectRunning([app], '')).toThrow(/exited/);
    expect(() => expectNoCrashOutput(stderr())).toThrow(/stderr matches/);
  });
});
