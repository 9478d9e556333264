import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Sextant } from '@sextant/core';
import { Redis } from 'ioredis';

export type FinishedSpan = ReturnType<Sextant['tracing']['finishedSpans']>[number];

export const REDIS_URL = 'redis://127.0.0.1:6379';

/** A prefix no other test (or run) shares, so each test sees only its own keys. */
export function uniquePrefix(): string {
  return `sextant-test-${randomUUID().slice(0, 8)}`;
}

/** Deletes every key under `prefix`. */
export async function deletePrefix(prefix: string, url = REDIS_URL): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export async function waitFor<T>(
  read: () => T | undefined | false,
  what: string,
  attempts = 300,
): Promise<T> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const value = read();
    if (value !== undefined && value !== false) return value;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function eventually<T>(
  read: () => Promise<T | undefined>,
  what: string,
  attempts = 300,
): Promise<T> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const value = await read();
    if (value !== undefined) return value;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function spansNamed(sextant: Sextant, name: string): FinishedSpan[] {
  return sextant.tracing.finishedSpans().filter((span) => span.name === name);
}

export { collectLines } from '../../../tooling/testing/log-collector.ts';

/** A TCP port that was free a moment ago (and nothing listens on). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A throwaway redis-server on `port`; `stop()` shuts it down without saving. */
export async function startRedis(port: number): Promise<{ url: string; stop(): void }> {
  execFileSync('redis-server', [
    '--port',
    String(port),
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'yes',
  ]);
  const url = `redis://127.0.0.1:${port}`;
  await waitFor(
    () => spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG',
    `redis-server on port ${port}`,
  );
  return {
    url,
    stop() {
      spawnSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave']);
    },
  };
}

export interface RedisMonitor {
  /** Calls `listener` with the arguments and the source (`lua` for a script's calls) of every command. */
  onCommand(listener: (args: string[], source: string) => void): void;
  close(): void;
}

/**
 * Redis's MONITOR over a plain socket. ioredis's `monitor()` can take another client's command,
 * seen before it switched to monitor mode, for a reply, and fail with "Command queue state error"
 * (redis/ioredis#1981, taskforcesh/bullmq#2505): tests running in parallel connect all the time.
 */
export async function monitorRedis(url = REDIS_URL): Promise<RedisMonitor> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port || 6379) });
  await once(socket, 'connect');
  const listeners: Array<(args: string[], source: string) => void> = [];
  let buffered = '';
  let started = false;
  const ready = new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let end = buffered.indexOf('\r\n');
      while (end !== -1) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        end = buffered.indexOf('\r\n');
        if (!started) {
          if (line !== '+OK') reject(new Error(`MONITOR answered ${line}`));
          started = true;
          resolve();
          continue;
        }
        const parsed = parseMonitorLine(line);
        if (parsed) for (const listener of listeners) listener(parsed.args, parsed.source);
      }
    });
  });
  socket.write('MONITOR\r\n');
  await ready;
  return {
    onCommand: (listener) => listeners.push(listener),
    close: () => socket.destroy(),
  };
}

/** `+1795656640.355245 [0 127.0.0.1:47738] "evalsha" "abc" "1"`: the source and the quoted arguments. */
function parseMonitorLine(line: string): { args: string[]; source: string } | undefined {
  const match = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$/.exec(line);
  if (!match) return undefined;
  const args: string[] = [];
  const text = match[2]!;
  let at = 0;
  while (at < text.length) {
    if (text[at] !== '"') {
      at++;
      continue;
    }
    let value = '';
    at++;
    while (at < text.length && text[at] !== '"') {
      if (text[at] === '\\') {
        const next = text[at + 1];
        if (next === 'x') {
          value += String.fromCharCode(Number.parseInt(text.slice(at + 2, at + 4), 16));
          at += 4;
          continue;
        }
        value += next === 'n' ? '\n' : next === 'r' ? '\r' : next === 't' ? '\t' : (next ?? '');
        at += 2;
        continue;
      }
      value += text[at];
      at++;
    }
    args.push(value);
    at++;
  }
  return { args, source: match[1]! };
}
