import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Problem } from 'job-store';
import { energyOf, flip, flipDelta, localFields, objectiveOf, type Qubo, toQubo } from './qubo.ts';
import { createRandom, type Environment, readBoolean, readName, readNumber } from './settings.ts';

/** What the solver needs from a quantum provider; the simulated one below, or a real SDK behind the same shape. */
export interface QuantumProvider {
  /** Bounded: the `quantum_provider` metric label. */
  readonly name: string;
  readonly backend: string;
  readonly shots: number;
  /** Runs the problem; rejects with a `ProviderError` when the provider cannot answer. */
  sample(problem: Problem, request?: SampleRequest): Promise<ProviderSample>;
}

export interface SampleRequest {
  /** Aborting stops waiting for the provider (the caller gave up: a timeout, a shutdown). */
  signal?: AbortSignal;
  /** The provider accepted the job and queued it. */
  onQueued?(providerJobId: string): void;
  /** The job left the provider's queue and runs. */
  onRunning?(): void;
}

export interface ProviderSample {
  providerJobId: string;
  /** The lowest-energy sample: 0 or 1 per variable. */
  assignment: number[];
  energy: number;
  /** The problem's objective for `assignment` (cut weight of a max-cut, energy of a QUBO). */
  value: number;
  /** How many of the shots returned that lowest energy. */
  occurrences: number;
  shots: number;
  /** What the provider charges for the job, in its billing unit. */
  cost: number;
}

/** The provider could not answer; `name` tells which kind of failure it was. */
export class ProviderError extends Error {
  readonly provider: string;

  constructor(provider: string, message: string) {
    super(message);
    this.provider = provider;
  }
}

/** The provider is unreachable or refuses all work. */
export class ProviderOutageError extends ProviderError {
  override readonly name = 'ProviderOutageError';
}

/** The provider accepted the job and then failed it. */
export class ProviderFailureError extends ProviderError {
  override readonly name = 'ProviderFailureError';
  readonly providerJobId: string;

  constructor(provider: string, providerJobId: string, message: string) {
    super(provider, message);
    this.providerJobId = providerJobId;
  }
}

/** The account has used all the jobs it may submit. */
export class QuotaExhaustedError extends ProviderError {
  override readonly name = 'QuotaExhaustedError';
  readonly quota: number;

  constructor(provider: string, quota: number) {
    super(provider, `${provider}: quota of ${quota} jobs exhausted`);
    this.quota = quota;
  }
}

export interface SimulatedProviderOptions {
  /** The provider's name, a metric label. Env `QUANTUM_PROVIDER_NAME`, default `simulated-annealer`. */
  name?: string;
  /** Env `QUANTUM_BACKEND`, default `sim-2000q`. */
  backend?: string;
  /** Milliseconds a job waits in the provider's queue. Env `QUANTUM_QUEUE_MS`, default 100. */
  queueMs?: number;
  /** Milliseconds a job runs once out of the queue. Env `QUANTUM_LATENCY_MS`, default 200. */
  latencyMs?: number;
  /** Share of accepted jobs the provider fails, 0 to 1. Env `QUANTUM_FAILURE_RATE`, default 0.1. */
  failureRate?: number;
  /** Refuse every job, as an unreachable provider would. Env `QUANTUM_OUTAGE`, default false. */
  outage?: boolean;
  /** Samples per job. Env `QUANTUM_SHOTS`, default 100. */
  shots?: number;
  /** Jobs the provider accepts in this process's lifetime. Env `QUANTUM_QUOTA`, default unlimited. */
  quota?: number;
  /** Charged per shot. Default 0.001. */
  costPerShot?: number;
  /** Seeds the failure draws and the sampler. Default: random. */
  seed?: number;
  /** Read instead of `process.env` (pass `{}` to ignore the environment). */
  env?: Environment;
}

export type SimulatedProviderSettings = Readonly<Required<Omit<SimulatedProviderOptions, 'env' | 'seed'>>>;

/**
 * The simulated provider's settings may change while it runs (a provider goes down, comes back);
 * its name and backend may not, since metric labels and breaker instrumentation hold them.
 */
export type SimulatedProviderChanges = Partial<
  Omit<SimulatedProviderOptions, 'env' | 'seed' | 'name' | 'backend'>
>;

export interface SimulatedProvider extends QuantumProvider {
  readonly settings: SimulatedProviderSettings;
  /** Jobs accepted so far (what the quota counts). */
  readonly accepted: number;
  /** Changes settings at run time, validated like the options; the environment is not read again. */
  configure(changes: SimulatedProviderChanges): void;
}

const MAX_DELAY_MS = 3_600_000;
const MAX_SHOTS = 100_000;
const MILLISECONDS = { min: 0, max: MAX_DELAY_MS, integer: true } as const;
/** A local search stops after this many sweeps even if a flip still helps (it cannot cycle, but bounds the time). */
const MAX_SWEEPS_PER_SHOT = 1_000;
const IMPROVEMENT_EPSILON = 1e-9;

function unlimitedAsUndefined(quota: number | undefined): number | undefined {
  return quota === Number.POSITIVE_INFINITY ? undefined : quota;
}

function resolveSettings(options: SimulatedProviderOptions, env: Environment): SimulatedProviderSettings {
  return Object.freeze({
    name: readName(env, 'QUANTUM_PROVIDER_NAME', 'name', options.name, 'simulated-annealer'),
    backend: readName(env, 'QUANTUM_BACKEND', 'backend', options.backend, 'sim-2000q'),
    queueMs: readNumber(env, 'QUANTUM_QUEUE_MS', 'queueMs', options.queueMs, 100, MILLISECONDS),
    latencyMs: readNumber(env, 'QUANTUM_LATENCY_MS', 'latencyMs', options.latencyMs, 200, MILLISECONDS),
    failureRate: readNumber(env, 'QUANTUM_FAILURE_RATE', 'failureRate', options.failureRate, 0.1, {
      min: 0,
      max: 1,
      integer: false,
    }),
    outage: readBoolean(env, 'QUANTUM_OUTAGE', 'outage', options.outage, false),
    shots: readNumber(env, 'QUANTUM_SHOTS', 'shots', options.shots, 100, {
      min: 1,
      max: MAX_SHOTS,
      integer: true,
    }),
    // Infinity is how the settings spell "unlimited"; a limit given in code or env is a count.
    quota: readNumber(
      env,
      'QUANTUM_QUOTA',
      'quota',
      unlimitedAsUndefined(options.quota),
      Number.POSITIVE_INFINITY,
      {
        min: 0,
        max: Number.POSITIVE_INFINITY,
        integer: true,
      },
    ),
    costPerShot: readNumber(env, 'QUANTUM_COST_PER_SHOT', 'costPerShot', options.costPerShot, 0.001, {
      min: 0,
      max: Number.POSITIVE_INFINITY,
      integer: false,
    }),
  });
}

interface LowestSample {
  assignment: Uint8Array;
  energy: number;
  occurrences: number;
}

/**
 * What an annealer returns, imitated: each shot starts from a random assignment and descends by
 * single flips to a local minimum. Every answer is a valid assignment; the best of many shots is
 * usually optimal on small problems and good on larger ones.
 */
function sampleLowEnergy(qubo: Qubo, shots: number, random: () => number): LowestSample {
  const { size } = qubo;
  const assignment = new Uint8Array(size);
  const fields = new Float64Array(size);
  const lowest: LowestSample = {
    assignment: new Uint8Array(size),
    energy: Number.POSITIVE_INFINITY,
    occurrences: 0,
  };
  for (let shot = 0; shot < shots; shot++) {
    for (let i = 0; i < size; i++) assignment[i] = random() < 0.5 ? 1 : 0;
    localFields(qubo, assignment, fields);
    let energy = energyOf(qubo, assignment);
    let improved = true;
    for (let sweep = 0; improved && sweep < MAX_SWEEPS_PER_SHOT; sweep++) {
      improved = false;
      const offset = Math.floor(random() * size);
      for (let k = 0; k < size; k++) {
        const i = (offset + k) % size;
        const delta = flipDelta(assignment, fields, i);
        if (delta < -IMPROVEMENT_EPSILON) {
          flip(qubo, assignment, fields, i);
          energy += delta;
          improved = true;
        }
      }
    }
    if (energy < lowest.energy - IMPROVEMENT_EPSILON) {
      lowest.energy = energy;
      lowest.assignment.set(assignment);
      lowest.occurrences = 1;
    } else if (Math.abs(energy - lowest.energy) <= IMPROVEMENT_EPSILON) {
      lowest.occurrences++;
    }
  }
  return lowest;
}

/**
 * A simulated annealer-like provider: jobs wait `queueMs`, run `latencyMs`, fail at
 * `failureRate`, are refused during an `outage` or past the `quota`, and answer with real,
 * valid samples. Settings come from the options, overridden by the environment; an invalid
 * value throws a `SolverConfigError` naming the variable, the value and the allowed range.
 */
export function createSimulatedProvider(options: SimulatedProviderOptions = {}): SimulatedProvider {
  let settings = resolveSettings(options, options.env ?? process.env);
  let accepted = 0;
  const random = createRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));

  async function sample(problem: Problem, request: SampleRequest = {}): Promise<ProviderSample> {
    const { signal } = request;
    signal?.throwIfAborted();
    const { name, backend, queueMs, latencyMs, failureRate, outage, shots, quota, costPerShot } = settings;
    if (outage) throw new ProviderOutageError(name, `${name}: backend ${backend} is unreachable`);
    if (accepted >= quota) throw new QuotaExhaustedError(name, quota);
    accepted++;
    const providerJobId = randomUUID();
    const fails = random() < failureRate;
    request.onQueued?.(providerJobId);
    await delay(queueMs, undefined, { signal });
    request.onRunning?.();
    await delay(latencyMs, undefined, { signal });
    if (fails) {
      throw new ProviderFailureError(
        name,
        providerJobId,
        `${name}: job ${providerJobId} failed on ${backend}`,
      );
    }
    const lowest = sampleLowEnergy(toQubo(problem), shots, random);
    return {
      providerJobId,
      assignment: Array.from(lowest.assignment),
      energy: lowest.energy,
      value: objectiveOf(problem, lowest.energy),
      occurrences: lowest.occurrences,
      shots,
      cost: shots * costPerShot,
    };
  }

  return {
    get name() {
      return settings.name;
    },
    get backend() {
      return settings.backend;
    },
    get shots() {
      return settings.shots;
    },
    get settings() {
      return settings;
    },
    get accepted() {
      return accepted;
    },
    configure(changes: SimulatedProviderChanges): void {
      settings = resolveSettings({ ...settings, ...changes }, {});
    },
    sample,
  };
}
