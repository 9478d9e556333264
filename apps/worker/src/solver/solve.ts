import type { QuantumFallbackReason, QuantumJob, Sextant } from '@sextant/core';
import { type Problem, problemSize, validateProblem } from 'job-store';
import CircuitBreaker from 'opossum';
import { type AnnealOptions, anneal } from './classical.ts';
import {
  createSimulatedProvider,
  ProviderFailureError,
  type ProviderSample,
  type QuantumProvider,
  QuotaExhaustedError,
  type SampleRequest,
  type SimulatedProviderOptions,
} from './provider.ts';
import { type Environment, readNumber } from './settings.ts';

export interface SolverOptions {
  /** The provider to call; default: a simulated one built from `simulated` and the environment. */
  provider?: QuantumProvider;
  /** Options of the default simulated provider (ignored when `provider` is given). */
  simulated?: SimulatedProviderOptions;
  /** A provider call slower than this counts as a failure and falls back. Env `QUANTUM_TIMEOUT_MS`, default 2000. */
  timeoutMs?: number;
  /** How long the breaker stays open before letting one call through. Env `QUANTUM_BREAKER_RESET_MS`, default 5000. */
  breakerResetMs?: number;
  /** Failure percentage (over the last 10 s) that opens the breaker. Env `QUANTUM_BREAKER_ERROR_PERCENT`, default 50. */
  errorThresholdPercentage?: number;
  /** Calls (over the last 10 s) before the breaker may open. Env `QUANTUM_BREAKER_VOLUME`, default 3. */
  volumeThreshold?: number;
  /**
   * Problems of at most this many variables are also solved classically after a quantum answer,
   * to record the quantum advantage; 0 turns it off. Env `QUANTUM_COMPARE_MAX_VARIABLES`, default 16.
   */
  compareMaxVariables?: number;
  /** The classical solver's settings (fallback and comparison). */
  anneal?: AnnealOptions;
  /** Read instead of `process.env` (pass `{}` to ignore the environment); also given to the default provider. */
  env?: Environment;
}

export interface SolveJob {
  /** The application's job id, named in errors. */
  id: string;
  /** Checked again here: queue payloads and database rows are untrusted. */
  problem: Problem;
}

export type SolverFallbackReason = QuantumFallbackReason;

export interface SolveDurations {
  /** From the start of `solve` to its answer. */
  totalMs: number;
  /** Submission to the provider's answer (queue included), when it answered. */
  quantumMs?: number;
  /** The classical solver's run: the fallback, or the comparison after a quantum answer. */
  classicalMs?: number;
}

export interface SolveOutcome {
  /** Who answered: the provider, or the classical solver after a fallback. */
  solver: 'quantum' | 'classical';
  /** The provider the job was sent to (also after a fallback). */
  provider: string;
  backend: string;
  result: {
    /** 0 or 1 per variable (max-cut: the side of each vertex). */
    assignment: number[];
    /** Cut weight of a max-cut (maximised), energy of a QUBO (minimised). */
    value: number;
  };
  /** Set when `solver` is `classical`. */
  fallbackReason?: SolverFallbackReason;
  /** The provider's job id and charge, when it answered. */
  providerJobId?: string;
  cost?: number;
  durations: SolveDurations;
}

export interface Solver {
  /** The provider's answer, or the classical solver's when the provider cannot give one; throws only `InvalidProblemError`. */
  solve(job: SolveJob): Promise<SolveOutcome>;
  /** Stops watching the breaker and shuts it down; call after in-flight jobs have finished. */
  close(): void;
}

/** The job's problem failed validation: the job cannot succeed on retry. */
export class InvalidProblemError extends Error {
  override readonly name = 'InvalidProblemError';
  readonly jobId: string;

  constructor(jobId: string, message: string) {
    super(`job ${jobId}: invalid problem: ${message}`);
    this.jobId = jobId;
  }
}

const CLASSICAL_SOLVER = 'simulated_annealing';
const QUANTUM_SOLVER = 'quantum_annealing';
const MAX_MS = 3_600_000;

/** opossum's error codes for a call it did not let through and for one that took too long. */
const BREAKER_OPEN_CODE = 'EOPENBREAKER';
const BREAKER_TIMEOUT_CODE = 'ETIMEDOUT';

type ProviderCall = { sample: ProviderSample } | { error: unknown };

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

/** Why the provider could not answer; the job span also gets the exception, but for an open breaker. */
function fallbackReasonOf(error: unknown): SolverFallbackReason {
  const code = errorCode(error);
  if (code === BREAKER_OPEN_CODE) return 'circuit_open';
  if (code === BREAKER_TIMEOUT_CODE) return 'timeout';
  if (error instanceof QuotaExhaustedError) return 'quota_exhausted';
  if (error instanceof ProviderFailureError) return 'provider_error';
  return 'provider_outage';
}

/**
 * The solving domain of the worker: each job goes to the quantum provider through a circuit
 * breaker, traced as a `sextant.quantum` job (a child of the caller's active span), and falls back
 * to simulated annealing when the provider fails, is down, is too slow, is out of quota or the
 * breaker is open. Options are overridden by the environment; an invalid one throws a
 * `SolverConfigError` naming the variable, the value and the allowed range.
 */
export function createSolver(sextant: Sextant, options: SolverOptions = {}): Solver {
  const env = options.env ?? process.env;
  const provider = options.provider ?? createSimulatedProvider({ ...options.simulated, env });
  const timeoutMs = readNumber(env, 'QUANTUM_TIMEOUT_MS', 'timeoutMs', options.timeoutMs, 2000, {
    min: 1,
    max: MAX_MS,
    integer: true,
  });
  const resetTimeout = readNumber(
    env,
    'QUANTUM_BREAKER_RESET_MS',
    'breakerResetMs',
    options.breakerResetMs,
    5000,
    {
      min: 1,
      max: MAX_MS,
      integer: true,
    },
  );
  const errorThresholdPercentage = readNumber(
    env,
    'QUANTUM_BREAKER_ERROR_PERCENT',
    'errorThresholdPercentage',
    options.errorThresholdPercentage,
    50,
    { min: 1, max: 100, integer: false },
  );
  const volumeThreshold = readNumber(
    env,
    'QUANTUM_BREAKER_VOLUME',
    'volumeThreshold',
    options.volumeThreshold,
    3,
    {
      min: 0,
      max: 1_000_000,
      integer: true,
    },
  );
  const compareMaxVariables = readNumber(
    env,
    'QUANTUM_COMPARE_MAX_VARIABLES',
    'compareMaxVariables',
    options.compareMaxVariables,
    16,
    { min: 0, max: 1_000_000, integer: true },
  );
  const annealOptions = options.anneal ?? {};
  const providerName = provider.name;

  const breaker = new CircuitBreaker(
    (problem: Problem, request: SampleRequest) => provider.sample(problem, request),
    {
      name: `quantum:${providerName}`,
      timeout: timeoutMs,
      resetTimeout,
      errorThresholdPercentage,
      volumeThreshold,
    },
  );
  const stopWatching = sextant.quantum.instrumentBreaker(breaker, { provider: providerName });

  async function callProvider(problem: Problem, job: QuantumJob): Promise<ProviderCall> {
    const call = new AbortController();
    const request: SampleRequest = {
      signal: call.signal,
      onQueued: (providerJobId) => job.queued({ providerJobId }),
      onRunning: () => job.running(),
    };
    try {
      return { sample: await job.context(() => breaker.fire(problem, request)) };
    } catch (error) {
      // The breaker stopped waiting (a timeout); stop the provider call too.
      call.abort();
      return { error };
    }
  }

  async function solve(solveJob: SolveJob): Promise<SolveOutcome> {
    const validation = validateProblem(solveJob.problem);
    if (!validation.ok) throw new InvalidProblemError(solveJob.id, validation.message);
    const { problem } = validation;
    const size = problemSize(problem);
    const started = performance.now();
    const { backend } = provider;
    const job = sextant.quantum.submit({
      provider: providerName,
      backend,
      problemType: problem.type,
      problemSize: size,
      qubits: size,
      shots: provider.shots,
      solver: QUANTUM_SOLVER,
    });

    const call = await callProvider(problem, job);
    if ('sample' in call) {
      const { sample } = call;
      const quantumMs = performance.now() - started;
      job.completed({ result: sample.value, cost: sample.cost });
      const durations: SolveDurations = { totalMs: quantumMs, quantumMs };
      if (size <= compareMaxVariables) {
        const classical = anneal(problem, annealOptions);
        durations.classicalMs = classical.durationMs;
        sextant.quantum.advantage(problem.type, classical.durationMs, quantumMs);
        durations.totalMs = performance.now() - started;
      }
      return {
        solver: 'quantum',
        provider: providerName,
        backend,
        result: { assignment: sample.assignment, value: sample.value },
        providerJobId: sample.providerJobId,
        cost: sample.cost,
        durations,
      };
    }

    const reason = fallbackReasonOf(call.error);
    const classical = anneal(problem, annealOptions);
    job.fellBack(reason, {
      solver: CLASSICAL_SOLVER,
      durationMs: classical.durationMs,
      ...(reason === 'circuit_open' ? {} : { error: call.error }),
    });
    return {
      solver: 'classical',
      provider: providerName,
      backend,
      result: { assignment: classical.assignment, value: classical.value },
      fallbackReason: reason,
      durations: { totalMs: performance.now() - started, classicalMs: classical.durationMs },
    };
  }

  return {
    solve,
    close(): void {
      stopWatching();
      breaker.shutdown();
    },
  };
}
