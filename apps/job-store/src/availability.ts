import { setTimeout as sleep } from 'node:timers/promises';
import { prismaHealthCheck } from '@sextant/prisma';
import type { JobStore } from './store.ts';

// Prisma's codes for a database it cannot talk to: not reachable, connect timeout, operation
// timeout, connection closed, pool timeout, too many connections.
const UNAVAILABLE_PRISMA_CODES: ReadonlySet<string> = new Set([
  'P1001',
  'P1002',
  'P1008',
  'P1017',
  'P2024',
  'P2037',
]);
// The same, as the driver adapter names them (`meta.driverAdapterError.cause.kind`).
const UNAVAILABLE_ADAPTER_KINDS: ReadonlySet<string> = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
]);
const UNAVAILABLE_SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
// SQLSTATE: class 08 (connection exception), the server shutting down or starting
// (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now), 53300 too_many_connections.
const UNAVAILABLE_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[123]|53300)$/;
// node-postgres errors that carry no code.
const UNAVAILABLE_MESSAGE =
  /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect/i;

interface ErrorLike {
  code?: unknown;
  originalCode?: unknown;
  kind?: unknown;
  message?: unknown;
  cause?: unknown;
  meta?: { driverAdapterError?: unknown };
}

function matches(error: ErrorLike): boolean {
  for (const code of [error.code, error.originalCode]) {
    if (typeof code !== 'string') continue;
    if (
      UNAVAILABLE_PRISMA_CODES.has(code) ||
      UNAVAILABLE_SOCKET_CODES.has(code) ||
      UNAVAILABLE_SQLSTATE.test(code)
    ) {
      return true;
    }
  }
  if (typeof error.kind === 'string' && UNAVAILABLE_ADAPTER_KINDS.has(error.kind)) return true;
  return typeof error.message === 'string' && UNAVAILABLE_MESSAGE.test(error.message);
}

/**
 * Whether a job-store call failed because the database could not be reached (refused, closed,
 * shutting down, timed out, out of connections), not because of the call itself: such a call
 * may succeed unchanged once the database is back. Looks through Prisma's driver-adapter error
 * and `cause` chains.
 */
export function isStoreUnavailable(error: unknown): boolean {
  const pending: unknown[] = [error];
  for (let seen = 0; pending.length > 0 && seen < 8; seen++) {
    const current = pending.shift();
    if (typeof current !== 'object' || current === null) continue;
    const candidate = current as ErrorLike;
    if (matches(candidate)) return true;
    if (candidate.meta?.driverAdapterError !== undefined) pending.push(candidate.meta.driverAdapterError);
    if (candidate.cause !== undefined) pending.push(candidate.cause);
  }
  return false;
}

/**
 * What a failed job-store call says about its cause, for a log record: the last line of the
 * message (Prisma's messages start with the call site), at most 300 characters.
 */
export function storeErrorReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.trim().split('\n').at(-1)?.trim().slice(0, 300) ?? '';
}

/** How long {@link jobStoreReachable} waits for `SELECT 1` before it answers `false`. */
export const STORE_PROBE_TIMEOUT_MS = 2000;

/**
 * Runs `SELECT 1` through the store, outside its instrumentation (no span, metric or log: it is
 * meant to be polled while the database is away), and answers whether it succeeded within
 * `timeoutMs`. Never rejects.
 */
export async function jobStoreReachable(
  store: JobStore,
  timeoutMs = STORE_PROBE_TIMEOUT_MS,
): Promise<boolean> {
  const controller = new AbortController();
  try {
    return await Promise.race([
      Promise.resolve(prismaHealthCheck(store).check(controller.signal)).then(
        (outcome) => outcome?.status !== 'down',
        () => false,
      ),
      sleep(timeoutMs, false, { ref: false }),
    ]);
  } finally {
    controller.abort();
  }
}
