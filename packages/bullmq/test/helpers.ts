import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
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
