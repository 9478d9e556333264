import type { ResolvedConfig } from './config.ts';
import { describeValue, ERROR_CODES, SextantConfigError } from './errors.ts';
import { createEventLoopCheck, createMemoryCheck } from './health-checks.ts';
import { type InternalErrorSink, safeCall } from './internal-errors.ts';

export type HealthStatus = 'up' | 'down';

/** What a check found. Build it with {@link up} and {@link down}: results are values, not exceptions. */
export interface HealthCheckResult {
  status: HealthStatus;
  /**
   * Short reason when down. It is shown in the detailed report and returned by `readiness()`,
   * but never served by the `/health/ready` endpoint, which is open to anyone who can reach it.
   */
  reason?: string;
  /** Anything useful to an operator (latency, pool size...); shown in the reports as is. */
  details?: Record<string, unknown>;
}

export interface HealthCheck {
  /** Unique; 1 to 64 characters of `a-z`, `0-9`, `_`, `.`, `-`, starting with a letter or digit. */
  name: string;
  /**
   * Checks one dependency. Returning nothing means up; throwing or rejecting means down, with the
   * error's message (never its stack) as the reason. `signal` aborts when the check times out:
   * pass it on to the client call where it can be, so the call ends early. A check is not called
   * again while its previous call is still pending, so a client that ignores the signal cannot
   * pile up calls on a hung dependency.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: an async check that returns nothing is a Promise<void>, which `undefined` would refuse
  check: (signal: AbortSignal) => HealthCheckResult | void | Promise<HealthCheckResult | void>;
  /** A failing critical check makes readiness answer 503; a non-critical one only shows in the detailed report. Default `true`. */
  critical?: boolean;
  /** Milliseconds before the check counts as down and its signal aborts. Default `health.checkTimeoutMs` (500). */
  timeoutMs?: number;
}

/** One check's outcome in a report. */
export interface CheckReport {
  name: string;
  status: HealthStatus;
  critical: boolean;
  duration_ms: number;
  reason?: string;
  details?: Record<string, unknown>;
}

/** Process memory, in bytes. */
export interface HealthMemory {
  rss: number;
  heap_used: number;
  heap_total: number;
  external: number;
}

export interface HealthReport {
  status: 'ok' | 'unavailable' | 'shutting_down';
  service?: string;
  version?: string;
  uptime_seconds?: number;
  memory?: HealthMemory;
  checks?: CheckReport[];
}

export interface HealthResponse {
  statusCode: 200 | 503;
  body: HealthReport;
}

export interface Health {
  /**
   * Adds a check and returns the function that removes it. Throws a `SextantConfigError`
   * (`SEXTANT_INVALID_HEALTH_CHECK`) naming what is wrong with the check.
   */
  register(check: HealthCheck): () => void;
  /** 200 while the process serves; runs no check, so a slow dependency cannot get the process restarted. */
  liveness(): { statusCode: 200; body: HealthReport };
  /**
   * Runs the critical checks: 503 when one is down, or at once while shutting down. The reports
   * keep their reasons for the caller in this process; the `/health/ready` endpoint serves only
   * each check's name and status.
   */
  readiness(): Promise<HealthResponse>;
  /** Runs every check and reports each with its status and duration, plus version, uptime and memory. */
  detailed(): Promise<HealthResponse>;
  /** From now on readiness answers 503 without running any check. */
  markShuttingDown(): void;
  readonly shuttingDown: boolean;
  /** Stops the built-in checks' monitors. Safe to call twice. */
  close(): void;
}

const UP: HealthCheckResult = Object.freeze({ status: 'up' });

/** A passing result; `details` appear in the reports as given. */
export const up = (details?: Record<string, unknown>): HealthCheckResult =>
  details === undefined ? UP : { status: 'up', details };

/** A failing result with a short reason for the reports (an operator reads it: no secrets). */
export const down = (reason: string, details?: Record<string, unknown>): HealthCheckResult =>
  details === undefined ? { status: 'down', reason } : { status: 'down', reason, details };

const CHECK_NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const MAX_TIMEOUT_MS = 600_000;
/** Reasons come from arbitrary error messages; a bound keeps the reports small. */
const MAX_REASON_LENGTH = 200;
const NO_REASON = 'reported down without a reason';

const LIVENESS = Object.freeze({ statusCode: 200 as const, body: Object.freeze({ status: 'ok' as const }) });
const SHUTTING_DOWN = Object.freeze({
  statusCode: 503 as const,
  body: Object.freeze({ status: 'shutting_down' as const }),
});

interface RegisteredCheck {
  readonly name: string;
  readonly check: HealthCheck['check'];
  readonly critical: boolean;
  readonly timeoutMs: number;
  readonly timeoutReason: string;
  /** The run in progress, shared by every probe that arrives before it answers. */
  running: Promise<CheckReport> | undefined;
  /**
   * The check's own call, kept until it settles. It outlives `running` when the call ignores the
   * abort signal (a Prisma query cannot be aborted), and while it is pending the check is not
   * called again (a hung database would otherwise get one more query per probe until its pool is
   * exhausted), up to ABANDON_CALL_AFTER_MS: a call that never settles must not keep the service
   * unready after its dependency is back.
   */
  pendingCall: { readonly startedAt: number } | undefined;
}

function invalidCheck(message: string): never {
  throw new SextantConfigError(ERROR_CODES.INVALID_HEALTH_CHECK, message);
}

function roundTo3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function boundReason(text: string): string {
  return text.length > MAX_REASON_LENGTH ? `${text.slice(0, MAX_REASON_LENGTH - 3)}...` : text;
}

/** The reason of a thrown value: its message only, since stacks leak paths and internals. */
function reasonOf(error: unknown): string {
  try {
    if (error instanceof Error) {
      const message = String(error.message);
      return boundReason(message !== '' ? message : error.name);
    }
    if (typeof error === 'string' && error !== '') return boundReason(error);
    return `threw ${describeValue(error)}`;
  } catch {
    return 'threw an unreadable error';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Accepts what the types allow; anything else is down, since it does not say the dependency is fine. */
function normaliseResult(value: unknown): HealthCheckResult {
  if (value === undefined || value === null) return UP;
  if (!isRecord(value)) {
    return down(`returned ${typeof value}: expected up(), down(reason) or nothing`);
  }
  const { status, reason, details } = value;
  const validDetails = isRecord(details) ? details : undefined;
  if (status === 'up') return up(validDetails);
  if (status === 'down') {
    return down(typeof reason === 'string' && reason !== '' ? boundReason(reason) : NO_REASON, validDetails);
  }
  return down(`returned status ${describeValue(status)}: expected "up" or "down"`);
}

function toReport(entry: RegisteredCheck, result: HealthCheckResult, durationMs: number): CheckReport {
  const report: CheckReport = {
    name: entry.name,
    status: result.status,
    critical: entry.critical,
    duration_ms: roundTo3(durationMs),
  };
  if (result.reason !== undefined) report.reason = result.reason;
  if (result.details !== undefined) report.details = result.details;
  return report;
}

/** Runs one check under its timeout. Never rejects, whatever the check does. */
function execute(entry: RegisteredCheck): Promise<CheckReport> {
  return new Promise((resolve) => {
    const started = performance.now();
    const controller = new AbortController();
    let settled = false;
    const settle = (result: HealthCheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      entry.running = undefined;
      resolve(toReport(entry, result, performance.now() - started));
    };
    const timer = setTimeout(() => {
      settle(down(entry.timeoutReason));
      controller.abort(new DOMException(entry.timeoutReason, 'TimeoutError'));
    }, entry.timeoutMs);
    timer.unref();

    const call = { startedAt: started };
    entry.pendingCall = call;
    // A later call may have replaced an abandoned one: only this call's own marker is cleared.
    const callSettled = () => {
      if (entry.pendingCall === call) entry.pendingCall = undefined;
    };
    let outcome: unknown;
    try {
      outcome = entry.check(controller.signal);
    } catch (error) {
      // Settling later, like a rejection, keeps one path: `running` is always set before it clears.
      outcome = Promise.reject(error);
    }
    Promise.resolve(outcome).then(
      (value) => {
        callSettled();
        let result: HealthCheckResult;
        try {
          result = normaliseResult(value);
        } catch (error) {
          // A throwing getter on the returned object.
          result = down(reasonOf(error));
        }
        settle(result);
      },
      (error: unknown) => {
        callSettled();
        settle(down(reasonOf(error)));
      },
    );
  });
}

/**
 * A check whose previous call outlived its timeout answers down at once rather than waiting on
 * that call again: the call already took longer than the timeout allows, so whatever it returns
 * now could not count as up, and the probe stays as fast as the timeout promises.
 */
function stillRunning(entry: RegisteredCheck, callStartedAt: number): CheckReport {
  const elapsedMs = performance.now() - callStartedAt;
  return toReport(
    entry,
    down(
      `still running after ${Math.round(elapsedMs)} ms (timeout ${entry.timeoutMs} ms); not called again until it settles or ${ABANDON_CALL_AFTER_MS / 1000} s pass`,
    ),
    elapsedMs,
  );
}

/**
 * How long a call that never settles holds its check back: past it, one new call is made (at most
 * one per this period, so a dependency still sees next to no load), so that a connection hung for
 * good does not keep readiness down after the dependency is back.
 */
const ABANDON_CALL_AFTER_MS = 30_000;

function runShared(entry: RegisteredCheck): Promise<CheckReport> {
  if (entry.running !== undefined) return entry.running;
  const pending = entry.pendingCall;
  if (pending !== undefined && performance.now() - pending.startedAt < ABANDON_CALL_AFTER_MS) {
    return Promise.resolve(stillRunning(entry, pending.startedAt));
  }
  entry.running = execute(entry);
  return entry.running;
}

/**
 * The health registry, with the built-in `event_loop` and `memory` checks registered. Each check
 * runs under its own timeout, all run in parallel, concurrent probes share one run per check, and
 * a check whose call outlived its timeout is not called again until that call settles, so a probe
 * answers within the longest timeout, and a dependency sees one call at a time, whatever the
 * probe rate.
 */
export function createHealth(
  config: ResolvedConfig,
  sink: InternalErrorSink,
  service: { name: string; version: string | undefined },
): Health {
  const registered = new Map<string, RegisteredCheck>();
  // Rebuilt on (rare) registration changes so probes only iterate.
  let allChecks: readonly RegisteredCheck[] = [];
  let criticalChecks: readonly RegisteredCheck[] = [];
  let shuttingDown = false;

  function rebuildLists(): void {
    allChecks = [...registered.values()];
    criticalChecks = allChecks.filter((entry) => entry.critical);
  }

  function validate(check: HealthCheck): RegisteredCheck {
    if (!isRecord(check)) {
      invalidCheck(
        `health check ${describeValue(check)} is invalid: expected an object { name, check, critical?, timeoutMs? }`,
      );
    }
    const { name, check: run, critical, timeoutMs } = check as Partial<HealthCheck>;
    if (typeof name !== 'string' || !CHECK_NAME_PATTERN.test(name)) {
      invalidCheck(
        `health check name ${describeValue(name)} is invalid: expected 1 to 64 characters of a-z, 0-9, "_", "." or "-", starting with a letter or digit`,
      );
    }
    if (registered.has(name)) {
      invalidCheck(
        `health check "${name}" is already registered: expected a unique name (unregister the first one to replace it)`,
      );
    }
    if (typeof run !== 'function') {
      invalidCheck(
        `health check "${name}": check is ${describeValue(run)}: expected a function (signal) => result`,
      );
    }
    if (critical !== undefined && typeof critical !== 'boolean') {
      invalidCheck(`health check "${name}": critical is ${describeValue(critical)}: expected a boolean`);
    }
    if (
      timeoutMs !== undefined &&
      (typeof timeoutMs !== 'number' ||
        !Number.isInteger(timeoutMs) ||
        timeoutMs < 1 ||
        timeoutMs > MAX_TIMEOUT_MS)
    ) {
      invalidCheck(
        `health check "${name}": timeoutMs is ${describeValue(timeoutMs)}: expected an integer from 1 to ${MAX_TIMEOUT_MS} (milliseconds)`,
      );
    }
    const effectiveTimeoutMs = timeoutMs ?? config.health.checkTimeoutMs;
    return {
      name,
      check: run,
      critical: critical ?? true,
      timeoutMs: effectiveTimeoutMs,
      timeoutReason: `timed out after ${effectiveTimeoutMs} ms`,
      running: undefined,
      pendingCall: undefined,
    };
  }

  function register(check: HealthCheck): () => void {
    const entry = validate(check);
    registered.set(entry.name, entry);
    rebuildLists();
    return () => {
      // Only this registration: a later check registered under the same name stays.
      if (registered.get(entry.name) !== entry) return;
      registered.delete(entry.name);
      rebuildLists();
    };
  }

  function readMemory(): HealthMemory | undefined {
    return safeCall(
      sink,
      'health',
      () => {
        const usage = process.memoryUsage();
        return {
          rss: usage.rss,
          heap_used: usage.heapUsed,
          heap_total: usage.heapTotal,
          external: usage.external,
        };
      },
      undefined,
    );
  }

  const eventLoopCheck = createEventLoopCheck(config.health.eventLoopLagThresholdMs);
  register(eventLoopCheck);
  register(createMemoryCheck(config.health.heapUsedRatioThreshold));

  return {
    register,
    liveness: () => LIVENESS,
    async readiness() {
      if (shuttingDown) return SHUTTING_DOWN;
      const reports = await Promise.all(criticalChecks.map(runShared));
      // Shutdown may have begun while the checks ran; it wins.
      if (shuttingDown) return SHUTTING_DOWN;
      const failing = reports.some((report) => report.status === 'down');
      return {
        statusCode: failing ? 503 : 200,
        body: { status: failing ? 'unavailable' : 'ok', checks: reports },
      };
    },
    async detailed() {
      const reports = await Promise.all(allChecks.map(runShared));
      const failing = reports.some((report) => report.critical && report.status === 'down');
      const status = shuttingDown ? 'shutting_down' : failing ? 'unavailable' : 'ok';
      const body: HealthReport = { status, service: service.name };
      if (service.version !== undefined) body.version = service.version;
      body.uptime_seconds = roundTo3(process.uptime());
      const memory = readMemory();
      if (memory !== undefined) body.memory = memory;
      body.checks = reports;
      return { statusCode: status === 'ok' ? 200 : 503, body };
    },
    markShuttingDown() {
      shuttingDown = true;
    },
    get shuttingDown() {
      return shuttingDown;
    },
    close() {
      eventLoopCheck.close();
    },
  };
}
