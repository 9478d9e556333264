import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/** A sample app running as its own process, the way users run it, with its JSON log lines parsed. */
export interface AppProcess {
  url: string;
  child: ChildProcess;
  /** Every JSON record the app wrote to stdout so far. */
  records(): Array<Record<string, any>>;
  /** Lines on stdout that were not JSON (must stay empty: logs are one JSON object per line). */
  strayLines(): string[];
  waitForRecord(
    predicate: (record: Record<string, any>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, any>>;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

/** Where an app runs: its folder, and the script `node` runs there (default `src/main.ts`). */
export interface AppCommand {
  cwd: string;
  env?: Record<string, string>;
  entry?: string;
}

/** Spawns the app the way `pnpm start` runs it, workspace packages resolved to their sources. */
function spawnApp(options: AppCommand, env: Record<string, string | undefined>): ChildProcess {
  return spawn(process.execPath, ['--conditions=sextant-source', options.entry ?? 'src/main.ts'], {
    cwd: options.cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export async function startApp(options: AppCommand & { startTimeoutMs?: number }): Promise<AppProcess> {
  const child = spawnApp(options, { NODE_ENV: 'test', PORT: '0', ...options.env });
  const records: Array<Record<string, any>> = [];
  const stray: string[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      records.push(JSON.parse(line));
    } catch {
      stray.push(line);
    }
    for (const wake of waiters) wake();
  });
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));

  const waitForRecord = (predicate: (record: Record<string, any>) => boolean, timeoutMs = 10_000) =>
    new Promise<Record<string, any>>((resolve, reject) => {
      const check = () => {
        const found = records.find(predicate);
        if (!found) return false;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching log record within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`));
      }, timeoutMs);
      if (!check()) waiters.add(check);
      void exited.then(() => {
        if (waiters.has(check)) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`app exited before the record appeared; stderr: ${stderr.slice(-2000)}`));
        }
      });
    });

  const listening = await waitForRecord(
    (record) => typeof record.port === 'number' && /listening/i.test(String(record.msg)),
    options.startTimeoutMs ?? 20_000,
  );
  return {
    url: `http://127.0.0.1:${listening.port}`,
    child,
    records: () => records,
    strayLines: () => stray,
    waitForRecord,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Runs the app until it exits by itself (or is killed after `timeoutMs`), for start-up checks:
 * its exit code and the records it wrote. Every line on stdout must be JSON.
 */
export async function runAppToExit(
  options: AppCommand & { timeoutMs?: number },
): Promise<{ code: number | null; records: Array<Record<string, unknown>> }> {
  const child = spawnApp(options, options.env ?? {});
  let stdout = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  const records = stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { code: code as number | null, records };
}
