/**
 * The worker's own settings, read from the environment at start. A blank value (`METRICS_PORT=`
 * in a .env or compose file) counts as unset, as everywhere in Sextant; any other value must be
 * digits in range, because `Number('')` is 0 (a random port) and `Number('0x50')` is 80, neither
 * what was meant.
 */

export type Environment = Readonly<Record<string, string | undefined>>;

export const DEFAULT_METRICS_PORT = 9464;
export const DEFAULT_CONCURRENCY = 4;
export const MAX_CONCURRENCY = 100;

export interface WorkerSettings {
  /** `METRICS_PORT`: 0 to 65535 (0 picks a free port), default {@link DEFAULT_METRICS_PORT}. */
  metricsPort: number;
  /** `WORKER_CONCURRENCY`: jobs processed at once, 1 to {@link MAX_CONCURRENCY}, default {@link DEFAULT_CONCURRENCY}. */
  concurrency: number;
}

/** An environment variable of the worker held a value it cannot use: start-up stops. */
export class WorkerConfigError extends Error {
  override readonly name = 'WorkerConfigError';
  /** The variable, e.g. `METRICS_PORT`. */
  readonly variable: string;
  /** Its value as given. */
  readonly value: string;

  constructor(variable: string, value: string, message: string) {
    super(message);
    this.variable = variable;
    this.value = value;
  }
}

function readInteger(env: Environment, variable: string, fallback: number, min: number, max: number): number {
  const given = env[variable];
  const raw = given?.trim() ?? '';
  if (given === undefined || raw === '') return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (value >= min && value <= max) return value;
  throw new WorkerConfigError(
    variable,
    given,
    `${variable} must be an integer from ${min} to ${max}, got ${JSON.stringify(given)}`,
  );
}

/** Reads {@link WorkerSettings}; throws a {@link WorkerConfigError} for the first invalid value. */
export function readWorkerSettings(env: Environment = process.env): WorkerSettings {
  return {
    metricsPort: readInteger(env, 'METRICS_PORT', DEFAULT_METRICS_PORT, 0, 65_535),
    concurrency: readInteger(env, 'WORKER_CONCURRENCY', DEFAULT_CONCURRENCY, 1, MAX_CONCURRENCY),
  };
}
