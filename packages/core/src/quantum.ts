/**
 * The quantum-job tracer: one span per job (per process that handles it), an event per lifecycle
 * transition, and the `quantum_*` metrics. Phases are events rather than child spans because
 * the job waits at the provider, not in this process: a "queued" child span would measure no
 * work of ours, and a job handed to another process could not end it. The phase durations are
 * histograms instead, where dashboards can aggregate them.
 */

import {
  type Attributes,
  type Context,
  context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
} from '@opentelemetry/api';
import type { Logger } from 'pino';
import { contextWithSpan, createRequestState, getRequestState, setRequestState } from './context.ts';
import { describeValue } from './errors.ts';
import type { InternalErrorSink } from './internal-errors.ts';
import { METRICS } from './metric-names.ts';
import type { Metrics, SextantCounter, SextantGauge, SextantHistogram } from './metrics.ts';
import { extractContext, injectContext, sanitizeRequestId } from './propagation.ts';
import { recordSpanError } from './traced.ts';

/** Span attribute keys of quantum jobs. */
export const QUANTUM_ATTRIBUTES = Object.freeze({
  PROVIDER: 'quantum.provider',
  BACKEND: 'quantum.backend',
  PROBLEM_TYPE: 'quantum.problem.type',
  PROBLEM_SIZE: 'quantum.problem.size',
  QUBITS: 'quantum.qubits',
  SHOTS: 'quantum.shots',
  SOLVER: 'quantum.solver',
  /** What the provider charged, in the provider's billing unit. */
  COST: 'quantum.cost',
  COST_ESTIMATE: 'quantum.cost.estimate',
  /** The provider's id for the job, once it accepted it. */
  JOB_ID: 'quantum.job.id',
  /** The job's state when a process resumed it. */
  JOB_STATE: 'quantum.job.state',
  OUTCOME: 'quantum.job.outcome',
  RESULT: 'quantum.result',
  FALLBACK_REASON: 'quantum.fallback.reason',
  FALLBACK_SOLVER: 'quantum.fallback.solver',
  /** Seconds the classical solver took. */
  FALLBACK_DURATION: 'quantum.fallback.duration',
});

/** Why a job was answered by a classical solver instead; anything else is recorded as `other`. */
export type QuantumFallbackReason =
  | 'provider_outage'
  | 'provider_error'
  | 'circuit_open'
  | 'timeout'
  | 'quota_exhausted';

/** How a job ended: the `outcome` label of `quantum_jobs_total` and `quantum_job_duration_seconds`. */
export type QuantumJobOutcome = 'completed' | 'failed' | 'cancelled' | 'timed_out' | 'fallback';

/** Where a job is; `handed_off` means another process continues it (see `QuantumJob.handOff`). */
export type QuantumJobState = 'submitted' | 'queued' | 'running' | QuantumJobOutcome | 'handed_off';

export interface QuantumJobSpec {
  /** Bounded: a metric label (`quantum_provider`). */
  provider: string;
  backend: string;
  /** Bounded: a metric label (`quantum_problem_type`), e.g. `maxcut`. */
  problemType: string;
  /** Problem size in the problem's own terms (nodes of a graph, variables...). */
  problemSize: number;
  qubits: number;
  shots: number;
  /** The quantum algorithm, e.g. `qaoa`. */
  solver?: string;
  costEstimate?: number;
}

export interface QuantumCompletion {
  /** A scalar summary of the answer (objective value, best bitstring); goes on the span. */
  result?: string | number | boolean;
  cost?: number;
  /**
   * Milliseconds a classical solver takes on the same problem: records the quantum advantage of
   * the problem type as this divided by the job's total time (see `QuantumTracer.advantage`).
   */
  classicalMs?: number;
}

export interface QuantumFallback {
  /** The classical solver that answered, e.g. `goemans-williamson`. */
  solver: string;
  durationMs: number;
  /** What the provider failed with, recorded on the job span as an exception event. */
  error?: unknown;
}

/** What `handOff()` returns: W3C trace context and the job's state, as a plain string record. */
export type QuantumJobCarrier = Record<string, string>;

/**
 * One job sent to a quantum provider. Transitions never throw: one the job cannot make (a second
 * `completed()`, `running()` after `cancelled()`, anything after the end) is ignored, counted in
 * `quantum_invalid_transitions_total{from,to}` and reported to the internal error sink.
 */
export interface QuantumJob {
  readonly state: QuantumJobState;
  /** The provider accepted the job and queued it. */
  queued(details?: { providerJobId?: string }): void;
  running(): void;
  completed(details?: QuantumCompletion): void;
  failed(error: unknown): void;
  cancelled(): void;
  timedOut(): void;
  /** A classical solver answered instead; call it instead of `failed()` / `timedOut()` when one does. */
  fellBack(reason: QuantumFallbackReason, details: QuantumFallback): void;
  /** Runs `fn` inside the job's span (provider calls made there are its children). */
  context<T>(fn: () => T): T;
  /**
   * Ends this process's part of the job and returns what another process passes to
   * `quantum.resume()` to continue it in the same trace. The job stops counting as active here.
   */
  handOff(): QuantumJobCarrier;
}

/** The parts of an opossum `CircuitBreaker` that are read; typed structurally, so core does not depend on opossum. */
export interface CircuitBreakerLike {
  readonly name?: string;
  readonly opened: boolean;
  readonly halfOpen: boolean;
  on(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
}

export interface QuantumTracer {
  /**
   * Starts a job (and its span, a child of the active one). Never throws: a missing or invalid
   * field is recorded as `unknown` (0 for a number; an optional one is left out) and reported to
   * the internal error sink (kind `quantum_submit`).
   */
  submit(spec: QuantumJobSpec): QuantumJob;
  /** Continues a job handed off by another process, in a new span that is a child of its previous one. */
  resume(carrier: QuantumJobCarrier): QuantumJob;
  /**
   * Sets `quantum_advantage_ratio{quantum_problem_type}` to `classicalMs / quantumMs`: the last
   * measurement per problem type, above 1 when quantum was faster. Non-positive times are ignored.
   */
  advantage(problemType: string, classicalMs: number, quantumMs: number): void;
  /**
   * Exports `quantum_circuit_breaker_state{quantum_provider}` (0 closed, 1 half-open, 2 open),
   * counts each call once by outcome in `quantum_circuit_breaker_events_total` (`success`,
   * `failure`, `timeout`, `reject`), runs of the breaker's fallback function in
   * `quantum_circuit_breaker_fallbacks_total`, and logs every state change. Returns a function
   * that removes the listeners. Never throws: a value that is not a breaker instruments nothing,
   * a missing provider is recorded as `unknown`, and both are reported (kind `quantum_breaker`).
   */
  instrumentBreaker(breaker: CircuitBreakerLike, options: { provider: string }): () => void;
}

export interface QuantumTracerDeps {
  tracer: Tracer;
  metrics: Metrics;
  logger: Logger;
  sink: InternalErrorSink;
}

/** The carrier key holding the job's state (JSON), next to `traceparent`, `tracestate`, `baggage`, `x-request-id`. */
export const QUANTUM_JOB_CARRIER_KEY = 'sextant-quantum-job';
const REQUEST_ID_KEY = 'x-request-id';
const UNKNOWN = 'unknown';
const FALLBACK_REASONS: ReadonlySet<string> = new Set([
  'provider_outage',
  'circuit_open',
  'timeout',
  'quota_exhausted',
  'provider_error',
]);
const OTHER_REASON = 'other';

export const CIRCUIT_BREAKER_STATE = Object.freeze({ CLOSED: 0, HALF_OPEN: 1, OPEN: 2 });
const BREAKER_TRANSITIONS = [
  ['open', CIRCUIT_BREAKER_STATE.OPEN, 'warn', 'quantum circuit breaker opened'],
  ['halfOpen', CIRCUIT_BREAKER_STATE.HALF_OPEN, 'info', 'quantum circuit breaker half-open'],
  ['close', CIRCUIT_BREAKER_STATE.CLOSED, 'info', 'quantum circuit breaker closed'],
] as const;
const BREAKER_STATE_NAMES = ['closed', 'half_open', 'open'] as const;

type Transition = Exclude<QuantumJobState, 'submitted'>;

/** How far along each state is; a job only moves forward, and never out of a final state. */
const STATE_RANK: Readonly<Record<QuantumJobState, number>> = {
  submitted: 0,
  queued: 1,
  running: 2,
  completed: 3,
  failed: 3,
  cancelled: 3,
  timed_out: 3,
  fallback: 3,
  handed_off: 3,
};
const FINAL_RANK = 3;

const OUTCOME_LOG_LEVEL: Readonly<Record<QuantumJobOutcome, 'info' | 'warn' | 'error'>> = {
  completed: 'info',
  cancelled: 'info',
  fallback: 'warn',
  timed_out: 'warn',
  failed: 'error',
};

interface JobRecord extends QuantumJobSpec {
  state: QuantumJobState;
  providerJobId?: string;
  /** Epoch milliseconds, so durations hold across processes (up to their clock skew). */
  submittedAt: number;
  queuedAt?: number;
  runningAt?: number;
}

interface Instruments {
  readonly jobs: SextantCounter<'quantum_provider' | 'outcome'>;
  readonly duration: SextantHistogram<'quantum_provider' | 'outcome'>;
  readonly phases: SextantHistogram<'quantum_provider' | 'phase'>;
  readonly active: SextantGauge<'quantum_provider'>;
  readonly fallbacks: SextantCounter<'quantum_provider' | 'reason'>;
  readonly invalid: SextantCounter<'from' | 'to'>;
}

interface Shared {
  readonly deps: QuantumTracerDeps;
  readonly instruments: Instruments;
  advantage(problemType: string, classicalMs: number, quantumMs: number): void;
}

function spanAttributes(record: JobRecord): Attributes {
  const attributes: Attributes = {
    [QUANTUM_ATTRIBUTES.PROVIDER]: record.provider,
    [QUANTUM_ATTRIBUTES.BACKEND]: record.backend,
    [QUANTUM_ATTRIBUTES.PROBLEM_TYPE]: record.problemType,
    [QUANTUM_ATTRIBUTES.PROBLEM_SIZE]: record.problemSize,
    [QUANTUM_ATTRIBUTES.QUBITS]: record.qubits,
    [QUANTUM_ATTRIBUTES.SHOTS]: record.shots,
  };
  if (record.solver !== undefined) attributes[QUANTUM_ATTRIBUTES.SOLVER] = record.solver;
  if (record.costEstimate !== undefined) attributes[QUANTUM_ATTRIBUTES.COST_ESTIMATE] = record.costEstimate;
  if (record.providerJobId !== undefined) attributes[QUANTUM_ATTRIBUTES.JOB_ID] = record.providerJobId;
  return attributes;
}

class Job implements QuantumJob {
  readonly #shared: Shared;
  readonly #record: JobRecord;
  readonly #span: Span;
  readonly #context: Context;
  readonly #providerLabels: { quantum_provider: string };

  constructor(shared: Shared, record: JobRecord, parent: Context, resumed: boolean) {
    this.#shared = shared;
    this.#record = record;
    this.#providerLabels = { quantum_provider: record.provider };
    const attributes = spanAttributes(record);
    if (resumed) attributes[QUANTUM_ATTRIBUTES.JOB_STATE] = record.state;
    this.#span = shared.deps.tracer.startSpan(
      `quantum.job ${record.problemType}`,
      { kind: SpanKind.CLIENT, attributes },
      parent,
    );
    this.#context = contextWithSpan(parent, this.#span);
    shared.instruments.active.inc(this.#providerLabels);
  }

  get state(): QuantumJobState {
    return this.#record.state;
  }

  queued(details?: { providerJobId?: string }): void {
    if (!this.#enter('queued')) return;
    this.#record.queuedAt = Date.now();
    const providerJobId = details?.providerJobId;
    if (typeof providerJobId === 'string') {
      this.#record.providerJobId = providerJobId;
      this.#span.setAttribute(QUANTUM_ATTRIBUTES.JOB_ID, providerJobId);
    }
    this.#span.addEvent('quantum.job.queued');
  }

  running(): void {
    if (!this.#enter('running')) return;
    const record = this.#record;
    const now = Date.now();
    record.runningAt = now;
    this.#observePhase('queued', now - (record.queuedAt ?? record.submittedAt));
    this.#span.addEvent('quantum.job.running');
  }

  completed(details?: QuantumCompletion): void {
    if (!this.#enter('completed')) return;
    const span = this.#span;
    if (details?.result !== undefined) span.setAttribute(QUANTUM_ATTRIBUTES.RESULT, details.result);
    if (details?.cost !== undefined) span.setAttribute(QUANTUM_ATTRIBUTES.COST, details.cost);
    const totalMs = this.#end('completed');
    if (details?.classicalMs !== undefined) {
      this.#shared.advantage(this.#record.problemType, details.classicalMs, totalMs);
    }
  }

  failed(error: unknown): void {
    if (!this.#enter('failed')) return;
    recordSpanError(this.#span, error);
    this.#end('failed', error);
  }

  cancelled(): void {
    if (this.#enter('cancelled')) this.#end('cancelled');
  }

  timedOut(): void {
    if (!this.#enter('timed_out')) return;
    this.#span.setStatus({ code: SpanStatusCode.ERROR, message: 'quantum job timed out' });
    this.#end('timed_out');
  }

  fellBack(reason: QuantumFallbackReason, details: QuantumFallback): void {
    if (!this.#enter('fallback')) return;
    const label = FALLBACK_REASONS.has(reason) ? reason : OTHER_REASON;
    const durationMs = details?.durationMs;
    const span = this.#span;
    span.setAttribute(QUANTUM_ATTRIBUTES.FALLBACK_REASON, label);
    if (details?.error !== undefined) {
      span.recordException(details.error instanceof Error ? details.error : String(details.error));
    }
    if (typeof details?.solver === 'string')
      span.setAttribute(QUANTUM_ATTRIBUTES.FALLBACK_SOLVER, details.solver);
    if (typeof durationMs === 'number') {
      span.setAttribute(QUANTUM_ATTRIBUTES.FALLBACK_DURATION, durationMs / 1000);
      this.#observePhase('fallback', durationMs);
    }
    this.#shared.instruments.fallbacks.inc({ quantum_provider: this.#record.provider, reason: label });
    this.#end('fallback', undefined, label);
  }

  context<T>(fn: () => T): T {
    return context.with(this.#context, fn);
  }

  handOff(): QuantumJobCarrier {
    const carrier: QuantumJobCarrier = {};
    const record = this.#record;
    const from = record.state;
    if (!this.#enter('handed_off')) return carrier;
    try {
      injectContext(carrier, this.#context);
      carrier[QUANTUM_JOB_CARRIER_KEY] = JSON.stringify({ ...record, state: from });
      this.#span.addEvent('quantum.job.handed_off');
      this.#span.end();
      this.#shared.instruments.active.dec(this.#providerLabels);
    } catch (error) {
      this.#shared.deps.sink.report('quantum', error);
    }
    return carrier;
  }

  /** Moves to `to` if the job can; otherwise counts and reports the attempt and returns false. */
  #enter(to: Transition): boolean {
    const from = this.#record.state;
    const fromRank = STATE_RANK[from];
    if (fromRank < FINAL_RANK && (to === 'handed_off' || STATE_RANK[to] > fromRank)) {
      this.#record.state = to;
      return true;
    }
    const { instruments, deps } = this.#shared;
    instruments.invalid.inc({ from, to });
    deps.sink.report(
      'quantum_invalid_transition',
      new Error(`quantum job (${this.#record.provider}) cannot go from ${from} to ${to}: ignored`),
    );
    return false;
  }

  #observePhase(phase: 'queued' | 'running' | 'fallback', milliseconds: number): void {
    if (milliseconds >= 0) {
      this.#shared.instruments.phases.observe(
        { quantum_provider: this.#record.provider, phase },
        milliseconds / 1000,
      );
    }
  }

  /** Records the outcome everywhere, ends the span and returns the job's total milliseconds. */
  #end(outcome: QuantumJobOutcome, error?: unknown, fallbackReason?: string): number {
    const record = this.#record;
    const span = this.#span;
    const now = Date.now();
    const totalMs = Math.max(0, now - record.submittedAt);
    try {
      if (record.runningAt !== undefined) this.#observePhase('running', now - record.runningAt);
      const { instruments, deps } = this.#shared;
      const labels = { quantum_provider: record.provider, outcome };
      instruments.jobs.inc(labels);
      instruments.duration.observe(labels, totalMs / 1000);
      instruments.active.dec(this.#providerLabels);
      span.setAttribute(QUANTUM_ATTRIBUTES.OUTCOME, outcome);
      span.addEvent(`quantum.job.${outcome}`);
      context.with(this.#context, () =>
        deps.logger[OUTCOME_LOG_LEVEL[outcome]](
          {
            quantum_provider: record.provider,
            quantum_backend: record.backend,
            quantum_problem_type: record.problemType,
            quantum_job_id: record.providerJobId,
            outcome,
            fallback_reason: fallbackReason,
            duration_ms: totalMs,
            err: error,
          },
          `quantum job ${outcome}`,
        ),
      );
    } catch (failure) {
      this.#shared.deps.sink.report('quantum', failure);
    }
    span.end();
    return totalMs;
  }
}

function isNonNegative(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

type SpecFields = Omit<JobRecord, 'state' | 'submittedAt' | 'providerJobId' | 'queuedAt' | 'runningAt'>;

/**
 * The spec `submit()` was given, checked field by field like a carrier's job state: a bad field
 * becomes a placeholder and is named in `problems`, because a mistake in the caller's
 * bookkeeping must not fail the job it describes.
 */
function readSpec(spec: unknown, problems: string[]): SpecFields {
  const isObject = typeof spec === 'object' && spec !== null;
  if (!isObject) problems.push(`spec ${describeValue(spec)}`);
  const raw: Record<string, unknown> = isObject ? (spec as Record<string, unknown>) : {};
  // Without a spec at all, its one problem says it all.
  const invalid = (key: string, value: unknown) => {
    if (isObject) problems.push(`${key} ${describeValue(value)}`);
  };
  const label = (key: 'provider' | 'backend' | 'problemType'): string => {
    const value = raw[key];
    if (typeof value === 'string' && value !== '') return value;
    invalid(key, value);
    return UNKNOWN;
  };
  const count = (key: 'problemSize' | 'qubits' | 'shots'): number => {
    const value = raw[key];
    if (isNonNegative(value)) return value;
    invalid(key, value);
    return 0;
  };
  const fields: SpecFields = {
    provider: label('provider'),
    backend: label('backend'),
    problemType: label('problemType'),
    problemSize: count('problemSize'),
    qubits: count('qubits'),
    shots: count('shots'),
  };
  const { solver, costEstimate } = raw;
  if (typeof solver === 'string') fields.solver = solver;
  else if (solver !== undefined) invalid('solver', solver);
  if (typeof costEstimate === 'number' && Number.isFinite(costEstimate)) fields.costEstimate = costEstimate;
  else if (costEstimate !== undefined) invalid('costEstimate', costEstimate);
  return fields;
}

/** The job state a carrier holds, checked field by field: whatever came over the wire is untrusted. */
function parseJobRecord(text: unknown): JobRecord | undefined {
  if (typeof text !== 'string') return undefined;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { provider, backend, problemType, state, submittedAt } = raw;
  if (
    typeof provider !== 'string' ||
    typeof backend !== 'string' ||
    typeof problemType !== 'string' ||
    typeof state !== 'string' ||
    !Object.hasOwn(STATE_RANK, state) ||
    STATE_RANK[state as QuantumJobState] >= FINAL_RANK ||
    !isNonNegative(submittedAt)
  ) {
    return undefined;
  }
  return {
    provider,
    backend,
    problemType,
    problemSize: optionalNumber(raw.problemSize) ?? 0,
    qubits: optionalNumber(raw.qubits) ?? 0,
    shots: optionalNumber(raw.shots) ?? 0,
    solver: optionalString(raw.solver),
    costEstimate: optionalNumber(raw.costEstimate),
    providerJobId: optionalString(raw.providerJobId),
    state: state as QuantumJobState,
    submittedAt,
    queuedAt: optionalNumber(raw.queuedAt),
    runningAt: optionalNumber(raw.runningAt),
  };
}

/** Builds the quantum-job tracer on a Sextant instance's tracer, metrics, logger and error sink. */
export function createQuantumTracer(deps: QuantumTracerDeps): QuantumTracer {
  const { metrics, logger, sink } = deps;
  const instruments: Instruments = {
    jobs: metrics.counter(METRICS.quantumJobs),
    duration: metrics.histogram(METRICS.quantumJobDuration),
    phases: metrics.histogram(METRICS.quantumJobPhaseDuration),
    active: metrics.gauge(METRICS.quantumActiveJobs),
    fallbacks: metrics.counter(METRICS.quantumClassicalFallbacks),
    invalid: metrics.counter(METRICS.quantumInvalidTransitions),
  };
  const advantageRatio = metrics.gauge(METRICS.quantumAdvantage);
  const breakerState = metrics.gauge(METRICS.quantumCircuitBreakerState);
  const breakerEvents = metrics.counter(METRICS.quantumCircuitBreakerEvents);
  const breakerFallbacks = metrics.counter(METRICS.quantumCircuitBreakerFallbacks);

  function advantage(problemType: string, classicalMs: number, quantumMs: number): void {
    if (!(isNonNegative(classicalMs) && classicalMs > 0 && isNonNegative(quantumMs) && quantumMs > 0)) {
      sink.report(
        'quantum_advantage',
        new Error(
          `quantum advantage of ${problemType} needs two positive times (got ${classicalMs} and ${quantumMs} ms)`,
        ),
      );
      return;
    }
    advantageRatio.set({ quantum_problem_type: problemType }, classicalMs / quantumMs);
  }

  const shared: Shared = { deps, instruments, advantage };

  function submit(spec: QuantumJobSpec): QuantumJob {
    const problems: string[] = [];
    const record: JobRecord = { ...readSpec(spec, problems), state: 'submitted', submittedAt: Date.now() };
    if (problems.length > 0) {
      sink.report(
        'quantum_submit',
        new Error(
          `quantum.submit() got ${problems.join(', ')}: expected a spec with provider, backend and problemType as non-empty strings, problemSize, qubits and shots as non-negative numbers, and solver (a string) and costEstimate (a number) only when given; the job is recorded with "unknown" or 0 in their place, or without them`,
        ),
      );
    }
    return new Job(shared, record, context.active(), false);
  }

  function resume(carrier: QuantumJobCarrier): QuantumJob {
    const source = typeof carrier === 'object' && carrier !== null ? carrier : {};
    let record = parseJobRecord(source[QUANTUM_JOB_CARRIER_KEY]);
    if (record === undefined) {
      sink.report(
        'quantum_resume',
        new Error('quantum job carrier holds no valid job state: resumed as unknown'),
      );
      record = {
        provider: UNKNOWN,
        backend: UNKNOWN,
        problemType: UNKNOWN,
        problemSize: 0,
        qubits: 0,
        shots: 0,
        state: 'submitted',
        submittedAt: Date.now(),
      };
    }
    let parent = extractContext(source);
    // The job's logs keep the correlation id of the request that submitted it.
    const requestId = sanitizeRequestId(source[REQUEST_ID_KEY]);
    if (requestId !== undefined && getRequestState(parent) === undefined) {
      parent = setRequestState(parent, createRequestState(requestId));
    }
    return new Job(shared, record, parent, true);
  }

  function instrumentBreaker(breaker: CircuitBreakerLike, options: { provider: string }): () => void {
    if (typeof breaker?.on !== 'function' || typeof breaker.removeListener !== 'function') {
      sink.report(
        'quantum_breaker',
        new Error(
          `instrumentBreaker got ${breaker === null ? 'null' : typeof breaker} as the breaker: expected an opossum CircuitBreaker (with on and removeListener); nothing is instrumented`,
        ),
      );
      return () => undefined;
    }
    const given = (options as { provider?: unknown } | undefined)?.provider;
    const provider = typeof given === 'string' && given !== '' ? given : UNKNOWN;
    if (provider !== given) {
      sink.report(
        'quantum_breaker',
        new Error(
          `instrumentBreaker options ${describeValue(options)} name no provider: expected { provider } with a non-empty string; recorded as "unknown"`,
        ),
      );
    }
    const providerLabels = { quantum_provider: provider };
    const listeners: Array<[string, (error?: unknown) => void]> = [];
    for (const [event, state, level, message] of BREAKER_TRANSITIONS) {
      listeners.push([
        event,
        () => {
          breakerState.set(providerLabels, state);
          try {
            // opossum fires transitions from timers started inside some job's context: the
            // record belongs to no job, so it must not carry that job's ids.
            context.with(ROOT_CONTEXT, () =>
              logger[level](
                {
                  quantum_provider: provider,
                  circuit_breaker: breaker.name,
                  circuit_breaker_state: BREAKER_STATE_NAMES[state],
                },
                message,
              ),
            );
          } catch (error) {
            sink.report('quantum_breaker', error);
          }
        },
      ]);
    }
    const succeeded = breakerEvents.child(provider, 'success');
    const failed = breakerEvents.child(provider, 'failure');
    const timedOut = breakerEvents.child(provider, 'timeout');
    const rejected = breakerEvents.child(provider, 'reject');
    const fellBack = breakerFallbacks.child(provider);
    // opossum emits `timeout` and then `failure` for one timed-out call, with the same error
    // object: remembering it counts the call once. A fallback runs on top of a failure, timeout
    // or reject, so it is counted apart, and the outcomes still add up to the calls.
    const timeoutErrors = new WeakSet<object>();
    listeners.push(
      ['success', () => succeeded.inc()],
      ['reject', () => rejected.inc()],
      [
        'timeout',
        (error) => {
          if (typeof error === 'object' && error !== null) timeoutErrors.add(error);
        },
      ],
      [
        'failure',
        (error) => {
          if (typeof error === 'object' && error !== null && timeoutErrors.has(error)) timedOut.inc();
          else failed.inc();
        },
      ],
      ['fallback', () => fellBack.inc()],
    );
    try {
      breakerState.set(
        providerLabels,
        breaker.opened
          ? CIRCUIT_BREAKER_STATE.OPEN
          : breaker.halfOpen
            ? CIRCUIT_BREAKER_STATE.HALF_OPEN
            : CIRCUIT_BREAKER_STATE.CLOSED,
      );
      for (const [event, listener] of listeners) breaker.on(event, listener);
    } catch (error) {
      sink.report('quantum_breaker', error);
    }
    return () => {
      for (const [event, listener] of listeners) {
        try {
          breaker.removeListener(event, listener);
        } catch (error) {
          sink.report('quantum_breaker', error);
        }
      }
    };
  }

  return Object.freeze({ submit, resume, advantage, instrumentBreaker });
}
