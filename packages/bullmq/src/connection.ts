import { setTimeout as sleep } from 'node:timers/promises';
import type { Sextant } from '@sextant/core';

/** A repeated connection error is logged again after this long (ioredis retries every second or so). */
const REPEAT_ERROR_LOG_MS = 30_000;
/** Distinct error messages remembered for that; the oldest is forgotten first. */
const REMEMBERED_ERROR_MESSAGES = 64;

/** How long {@link closeRedisClient} lets a queue or worker take to close. */
export const CLOSE_TIMEOUT_MS = 2000;

/** Error codes of a connection that failed or dropped, as Node's sockets and DNS report them. */
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** What ioredis and BullMQ say when a command meets a closed or unwritable connection. */
const CONNECTION_ERROR_MESSAGES = [
  'Connection is closed',
  "Stream isn't writeable",
  'max retries per request',
  // An aggregate of refused attempts carries the code only in its message.
  'ECONNREFUSED',
];

/** Whether an error on a BullMQ client is its Redis connection's, rather than a job's or BullMQ's own. */
function isRedisConnectionError(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code)) return true;
  if (error.name === 'ConnectionClosedError') return true;
  const message = typeof error.message === 'string' ? error.message : '';
  return CONNECTION_ERROR_MESSAGES.some((known) => message.includes(known));
}

/**
 * BullMQ emits its Redis connection's errors on the queue or worker, and its own (a job's lock
 * lost, a return value it cannot store, a job scheduler's next run not scheduled); unheard, an
 * `error` event crashes the process. This listens and logs them at `warn` with Sextant's logger,
 * as `<what>: Redis connection error` or `<what>: error reported by BullMQ`, with `connection`
 * true or false: once per distinct message, and again every 30 s while it repeats, so an outage
 * is visible without flooding the logs. `what` names the client in the message (`'job queue'`).
 */
export function reportConnectionErrors(
  sextant: Sextant,
  emitter: { on(event: 'error', listener: (error: Error) => void): unknown },
  what: string,
): void {
  // By message, so that two errors taking turns (a refused connection, then a closed one) do
  // not each count as new; bounded, for messages that carry ids.
  const loggedAt = new Map<string, number>();
  emitter.on('error', (error) => {
    const now = performance.now();
    const message = String(error?.message);
    const last = loggedAt.get(message);
    if (last !== undefined && now - last < REPEAT_ERROR_LOG_MS) return;
    loggedAt.delete(message);
    loggedAt.set(message, now);
    if (loggedAt.size > REMEMBERED_ERROR_MESSAGES) loggedAt.delete(loggedAt.keys().next().value!);
    const connection = isRedisConnectionError(error);
    sextant.logger.warn(
      { err: error, connection },
      connection ? `${what}: Redis connection error` : `${what}: error reported by BullMQ`,
    );
  });
}

/**
 * Closes a BullMQ queue or worker at shutdown without letting a Redis outage hold the process:
 * with Redis away, `close` fails (its QUIT cannot be sent, and ioredis would then go on
 * reconnecting) or never ends, so after a failure or `timeoutMs` the connection is disconnected
 * instead, with one warn record. That disconnect is not awaited: it can wait for an `end` event
 * that a dead connection never emits. Never rejects.
 */
export async function closeRedisClient(
  sextant: Sextant,
  target: { close(): Promise<void>; disconnect(): Promise<void> },
  what: string,
  timeoutMs = CLOSE_TIMEOUT_MS,
): Promise<void> {
  const closed = await Promise.race([
    target.close().then(
      () => true,
      () => false,
    ),
    sleep(timeoutMs, false, { ref: false }),
  ]);
  if (closed) return;
  sextant.logger.warn(
    { timeout_ms: timeoutMs },
    `${what}: Redis connection did not close cleanly, disconnecting`,
  );
  target.disconnect().catch(() => undefined);
}
