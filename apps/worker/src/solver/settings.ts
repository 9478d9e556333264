/**
 * Option and environment parsing shared by the provider and the solver. The environment
 * overrides options in code (as everywhere in Sextant), and an invalid value in either stops
 * start-up with a message naming the variable, the value and what is allowed.
 */

export type Environment = Readonly<Record<string, string | undefined>>;

/** An option in code or an environment variable of the solver was invalid. */
export class SolverConfigError extends Error {
  override readonly name = 'SolverConfigError';
  /** The environment variable the setting is read from (also named for options in code). */
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(message);
    this.variable = variable;
  }
}

export interface NumberRule {
  min: number;
  max: number;
  integer: boolean;
}

function describeRange({ min, max, integer }: NumberRule): string {
  const kind = integer ? 'an integer' : 'a number';
  return max === Number.POSITIVE_INFINITY ? `${kind} >= ${min}` : `${kind} from ${min} to ${max}`;
}

function fits(value: number, rule: NumberRule): boolean {
  return (
    Number.isFinite(value) &&
    value >= rule.min &&
    value <= rule.max &&
    (!rule.integer || Number.isInteger(value))
  );
}

/** Where a setting comes from, for the error message: `QUANTUM_X=...` or `option (QUANTUM_X)`. */
function source(variable: string, option: string, fromEnv: boolean, shown: string): string {
  return fromEnv ? `${variable}=${shown}` : `option ${option} (env ${variable}) = ${shown}`;
}

function envValue(env: Environment, variable: string): string | undefined {
  const raw = env[variable]?.trim();
  return raw === undefined || raw === '' ? undefined : raw;
}

export function readNumber(
  env: Environment,
  variable: string,
  option: string,
  optionValue: unknown,
  fallback: number,
  rule: NumberRule,
): number {
  const raw = envValue(env, variable);
  if (raw !== undefined) {
    const value = Number(raw);
    if (!fits(value, rule)) {
      throw new SolverConfigError(
        variable,
        `worker solver: ${source(variable, option, true, JSON.stringify(raw))} is invalid: expected ${describeRange(rule)}`,
      );
    }
    return value;
  }
  if (optionValue === undefined) return fallback;
  if (typeof optionValue !== 'number' || !fits(optionValue, rule)) {
    throw new SolverConfigError(
      variable,
      `worker solver: ${source(variable, option, false, JSON.stringify(optionValue) ?? String(optionValue))} is invalid: expected ${describeRange(rule)}`,
    );
  }
  return optionValue;
}

export function readBoolean(
  env: Environment,
  variable: string,
  option: string,
  optionValue: unknown,
  fallback: boolean,
): boolean {
  const raw = envValue(env, variable)?.toLowerCase();
  if (raw !== undefined) {
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    throw new SolverConfigError(
      variable,
      `worker solver: ${source(variable, option, true, JSON.stringify(env[variable]))} is invalid: expected true or false`,
    );
  }
  if (optionValue === undefined) return fallback;
  if (typeof optionValue !== 'boolean') {
    throw new SolverConfigError(
      variable,
      `worker solver: ${source(variable, option, false, JSON.stringify(optionValue) ?? String(optionValue))} is invalid: expected true or false`,
    );
  }
  return optionValue;
}

/** Names become metric labels and span attributes: short, and from a safe character set. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function readName(
  env: Environment,
  variable: string,
  option: string,
  optionValue: unknown,
  fallback: string,
): string {
  const raw = envValue(env, variable);
  const fromEnv = raw !== undefined;
  const value = fromEnv ? raw : optionValue;
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    throw new SolverConfigError(
      variable,
      `worker solver: ${source(variable, option, fromEnv, JSON.stringify(value) ?? String(value))} is invalid: expected 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  return value;
}

/** A small, fast, seedable PRNG (mulberry32): runs with the same seed make the same choices. */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
