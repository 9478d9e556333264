import { down, type HealthCheck } from '@sextant/core';
import type { Queue } from 'bullmq';
import type { SextantRedisHealthCheckOptions } from './types.ts';

interface Pingable {
  ping(): Promise<unknown>;
}

/**
 * A health check that sends PING through `queue`'s own Redis connection. Core runs it under its
 * timeout, so a hung or refused connection reports down within that time; the connection itself
 * (its retries, its errors to the application) stays BullMQ's.
 */
export function createRedisHealthCheck(
  queue: Queue,
  options: SextantRedisHealthCheckOptions = {},
): HealthCheck {
  const check: HealthCheck = {
    name: options.name ?? 'redis',
    critical: options.critical ?? true,
    async check() {
      const client = (await queue.getBackend().client) as unknown as Partial<Pingable>;
      if (typeof client.ping !== 'function') return down('the queue has no Redis client to ping');
      const reply = await client.ping();
      return reply === 'PONG' ? undefined : down(`PING answered ${String(reply).slice(0, 40)}`);
    },
  };
  if (options.timeoutMs !== undefined) check.timeoutMs = options.timeoutMs;
  return check;
}
