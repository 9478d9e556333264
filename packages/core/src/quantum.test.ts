import { setTimeout as sleep } from 'node:timers/promises';
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import CircuitBreaker from 'opossum';
import { afterEach, describe, expect, it } from 'vitest';
import { sampleValue } from '../../../tooling/testing/exposition.ts';
import { promtoolCheck } from '../../../tooling/testing/promtool.ts';
import { runWithRequestId } from './context.ts';
import { METRICS } from './metric-names.ts';
import {
  type CircuitBreakerLike,
  QUANTUM_JOB_CARRIER_KEY,
  type QuantumJobSpec,
  type QuantumTracer,
} from './quantum.ts';
import { createSextant, type Sextant } from './sextant.ts';

type LogRecord = Record<string, unknown> & { level: string; msg: string };

interface Harness {
  sextant: Sextant;
  quantum: QuantumTracer;
  records(): LogRecord[];
  spans(): readonly ReadableSpan[];
  metric(name: string, labels?: Record<string, string>): Promise<number | undefined>;
}

let current: Sextant | undefined;

afterEach(async () => {
  await current?.shutdown();
  current = undefined;
});

function harness(): Harness {
  const lines: string[] = [];
  const sextant = createSextant({
    serviceName: 'quantum-test',
    tracing: { exporter: 'memory' },
    logs: { destination: { write: (line: string) => void lines.push(line) } },
    env: {},
  });
  current = sextant;
  return {
    sextant,
    quantum: sextant.quantum,
    records: () => lines.map((line) => JSON.parse(line) as LogRecord),
    spans: () => sextant.tracing.finishedSpans(),
    metric: async (name, labels = {}) => sampleValue((await sextant.metrics.render()).body, name, labels),
  };
}

const MAXCUT = {
  provider: 'ibm',
  backend: 'ibm_torino',
  problemType: 'maxcut',
  problemSize: 4,
  qubits: 4,
  shots: 1024,
  solver: 'qaoa',
  costEstimate: 1.5,
} as const;

const IBM = { quantum_provider: 'ibm' };

/** The breaker outcomes of provider ibm that have a sample. */
async function breakerOutcomes(metric: Harness['metric']): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const event of ['success', 'failure', 'timeout', 'reject', 'fallback']) {
    const value = await metric('quantum_circuit_breaker_events_total', { ...IBM, event });
    if (value !== undefined) counts[event] = value;
  }
  return counts;
}

describe('quantum job lifecycle', () => {
  it('records a completed job on one span with an event per transition, and every metric', async () => {
    const { quantum, spans, records, metric, sextant } = harness();
    const job = quantum.submit(MAXCUT);
    expect(job.state).toBe('submitted');
    expect(await metric('quantum_active_jobs', IBM)).toBe(1);
    job.queued({ providerJobId: 'cq-123' });
    const inner = job.context(() => trace.getActiveSpan()?.spanContext().spanId);
    job.running();
    await sleep(5);
    job.completed({ result: '0101', cost: 1.25, classicalMs: 60_000 });
    expect(job.state).toBe('completed');

    const [span, ...others] = spans();
    expect(others).toEqual([]);
    expect(span!.spanContext().spanId).toBe(inner);
    expect(span).toMatchObject({ name: 'quantum.job maxcut', kind: SpanKind.CLIENT, ended: true });
    expect(span!.attributes).toEqual({
      'quantum.provider': 'ibm',
      'quantum.backend': 'ibm_torino',
      'quantum.problem.type': 'maxcut',
      'quantum.problem.size': 4,
      'quantum.qubits': 4,
      'quantum.shots': 1024,
      'quantum.solver': 'qaoa',
      'quantum.cost.estimate': 1.5,
      'quantum.job.id': 'cq-123',
      'quantum.result': '0101',
      'quantum.cost': 1.25,
      'quantum.job.outcome': 'completed',
    });
    expect(span!.events.map((e) => e.name)).toEqual([
      'quantum.job.queued',
      'quantum.job.running',
      'quantum.job.completed',
    ]);
    expect(span!.status.code).toBe(SpanStatusCode.UNSET);

    expect(await metric('quantum_jobs_total', { ...IBM, outcome: 'completed' })).toBe(1);
    expect(await metric('quantum_job_duration_seconds_count', { ...IBM, outcome: 'completed' })).toBe(1);
    expect(await metric('quantum_job_phase_duration_seconds_count', { ...IBM, phase: 'queued' })).toBe(1);
    expect(await metric('quantum_job_phase_duration_seconds_count', { ...IBM, phase: 'running' })).toBe(1);
    expect(await metric('quantum_job_phase_duration_seconds_count', { ...IBM, phase: 'fallback' })).toBe(
      undefined,
    );
    expect(await metric('quantum_active_jobs', IBM)).toBe(0);
    // classical 60 s over a total of at least 5 ms and far less than a minute.
    const ratio = await metric('quantum_advantage_ratio', { quantum_problem_type: 'maxcut' });
    expect(ratio).toBeGreaterThan(1);
    expect(ratio).toBeLessThanOrEqual(60_000 / 5);

    const logged = records().filter((r) => r.msg === 'quantum job completed');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      level: 'info',
      quantum_provider: 'ibm',
      quantum_backend: 'ibm_torino',
      quantum_problem_type: 'maxcut',
      quantum_job_id: 'cq-123',
      outcome: 'completed',
      trace_id: span!.spanContext().traceId,
      span_id: span!.spanContext().spanId,
    });

    const { status, problems } = promtoolCheck((await sextant.metrics.render()).body);
    expect(problems).toBe('');
    expect(status).toBe(0);
  });

  it('makes the job span a child of the active span', () => {
    const { quantum, spans, sextant } = harness();
    sextant.tracer.startActiveSpan('POST /jobs', (parent) => {
      quantum.submit(MAXCUT).cancelled();
      parent.end();
    });
    const [job, parent] = spans();
    expect(job!.parentSpanContext?.spanId).toBe(parent!.spanContext().spanId);
    expect(job!.attributes['quantum.job.outcome']).toBe('cancelled');
  });

  it('records a failure on the span, the metrics and an error log record', async () => {
    const { quantum, spans, records, metric } = harness();
    const job = quantum.submit(MAXCUT);
    job.running();
    job.failed(new RangeError('calibration drift'));
    const span = spans()[0]!;
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'calibration drift' });
    expect(span.attributes['error.type']).toBe('RangeError');
    expect(span.events.map((e) => e.name)).toEqual([
      'quantum.job.running',
      'exception',
      'quantum.job.failed',
    ]);
    expect(await metric('quantum_jobs_total', { ...IBM, outcome: 'failed' })).toBe(1);
    expect(await metric('quantum_active_jobs', IBM)).toBe(0);
    const logged = records().find((r) => r.msg === 'quantum job failed');
    expect(logged).toMatchObject({
      level: 'error',
      outcome: 'failed',
      err: { message: 'calibration drift' },
    });
  });

  it('records a timeout as an error outcome', async () => {
    const { quantum, spans, metric } = harness();
    const job = quantum.submit(MAXCUT);
    job.queued();
    job.timedOut();
    expect(spans()[0]!.status.code).toBe(SpanStatusCode.ERROR);
    expect(await metric('quantum_jobs_total', { ...IBM, outcome: 'timed_out' })).toBe(1);
  });

  it('records a classical fallback with its reason, solver and time', async () => {
    const { quantum, spans, metric, records } = harness();
    const job = quantum.submit(MAXCUT);
    job.running();
    job.fellBack('circuit_open', { solver: 'goemans-williamson', durationMs: 120 });
    const span = spans()[0]!;
    expect(span.attributes).toMatchObject({
      'quantum.fallback.reason': 'circuit_open',
      'quantum.fallback.solver': 'goemans-williamson',
      'quantum.fallback.duration': 0.12,
      'quantum.job.outcome': 'fallback',
    });
    expect(span.events.at(-1)!.name).toBe('quantum.job.fallback');
    expect(await metric('quantum_classical_fallbacks_total', { ...IBM, reason: 'circuit_open' })).toBe(1);
    expect(await metric('quantum_jobs_total', { ...IBM, outcome: 'fallback' })).toBe(1);
    expect(await metric('quantum_job_phase_duration_seconds_sum', { ...IBM, phase: 'fallback' })).toBe(0.12);
    expect(records().find((r) => r.msg === 'quantum job fallback')).toMatchObject({
      level: 'warn',
      fallback_reason: 'circuit_open',
    });
  });

  it('keeps fallback reasons bounded', async () => {
    const { quantum, metric } = harness();
    quantum.submit(MAXCUT).fellBack('solar_flare' as 'timeout', { solver: 'greedy', durationMs: 3 });
    expect(await metric('quantum_classical_fallbacks_total', { ...IBM, reason: 'other' })).toBe(1);
    expect(await metric('quantum_classical_fallbacks_total', { ...IBM, reason: 'solar_flare' })).toBe(
      undefined,
    );
  });

  it('counts and reports invalid transitions instead of throwing', async () => {
    const { quantum, spans, metric, sextant } = harness();
    const done = quantum.submit(MAXCUT);
    done.completed();
    expect(() => done.completed()).not.toThrow();
    const stopped = quantum.submit(MAXCUT);
    stopped.running();
    stopped.cancelled();
    expect(() => stopped.running()).not.toThrow();
    expect(() => stopped.fellBack('timeout', { solver: 'greedy', durationMs: 1 })).not.toThrow();
    expect(stopped.handOff()).toEqual({});
    const late = quantum.submit(MAXCUT);
    late.running();
    late.queued();

    expect(await metric('quantum_invalid_transitions_total', { from: 'completed', to: 'completed' })).toBe(1);
    expect(await metric('quantum_invalid_transitions_total', { from: 'cancelled', to: 'running' })).toBe(1);
    expect(await metric('quantum_invalid_transitions_total', { from: 'cancelled', to: 'fallback' })).toBe(1);
    expect(await metric('quantum_invalid_transitions_total', { from: 'cancelled', to: 'handed_off' })).toBe(
      1,
    );
    expect(await metric('quantum_invalid_transitions_total', { from: 'running', to: 'queued' })).toBe(1);
    expect(sextant.errors.counts().get('quantum_invalid_transition')).toBe(5);
    expect(await metric('quantum_jobs_total', { ...IBM, outcome: 'completed' })).toBe(1);
    expect(await metric('quantum_jobs_total', { ...IBM, outcome: 'cancelled' })).toBe(1);
    expect(await metric('quantum_classical_fallbacks_total', { ...IBM, reason: 'timeout' })).toBe(undefined);
    expect(await metric('quantum_active_jobs', IBM)).toBe(1);
    expect(late.state).toBe('running');
    expect(spans().map((s) => s.events.map((e) => e.name))).toEqual([
      ['quantum.job.completed'],
      ['quantum.job.running', 'quantum.job.cancelled'],
    ]);
  });

  it('sets the quantum advantage from two known times, ignoring non-positive ones', async () => {
    const { quantum, metric, sextant } = harness();
    quantum.advantage('tsp', 3000, 1500);
    expect(await metric('quantum_advantage_ratio', { quantum_problem_type: 'tsp' })).toBe(2);
    quantum.advantage('tsp', 3000, 0);
    quantum.advantage('tsp', Number.NaN, 10);
    expect(await metric('quantum_advantage_ratio', { quantum_problem_type: 'tsp' })).toBe(2);
    expect(sextant.errors.counts().get('quantum_advantage')).toBe(2);
  });

  it('puts a job that waited minutes at the provider in a finite bucket', async () => {
    const { quantum, metric } = harness();
    const carrier = quantum.submit(MAXCUT).handOff();
    // A typical provider queue: submitted five minutes ago, running for the last ten seconds.
    const state = JSON.parse(carrier[QUANTUM_JOB_CARRIER_KEY]!) as Record<string, unknown>;
    const now = Date.now();
    Object.assign(state, { state: 'queued', submittedAt: now - 300_000, queuedAt: now - 290_000 });
    const job = quantum.resume({ ...carrier, [QUANTUM_JOB_CARRIER_KEY]: JSON.stringify(state) });
    job.running();
    job.completed();

    const total = { ...IBM, outcome: 'completed' };
    expect(await metric('quantum_job_duration_seconds_bucket', { ...total, le: '120' })).toBe(0);
    expect(await metric('quantum_job_duration_seconds_bucket', { ...total, le: '600' })).toBe(1);
    const queued = { ...IBM, phase: 'queued' };
    expect(await metric('quantum_job_phase_duration_seconds_bucket', { ...queued, le: '120' })).toBe(0);
    expect(await metric('quantum_job_phase_duration_seconds_bucket', { ...queued, le: '300' })).toBe(1);
    // Hours of queueing still fit; a classical fallback of 100 ms has a bucket of its own.
    for (const descriptor of [METRICS.quantumJobDuration, METRICS.quantumJobPhaseDuration]) {
      expect(descriptor.buckets?.at(0)).toBe(0.1);
      expect(descriptor.buckets?.at(-1)).toBeGreaterThanOrEqual(4 * 3600);
    }
  });
});

describe('invalid input to the quantum tracer', () => {
  it('records a job submitted without a valid spec as unknown, reports it, and never throws', async () => {
    const { quantum, spans, metric, sextant } = harness();
    expect(() => quantum.submit(undefined as unknown as QuantumJobSpec).completed()).not.toThrow();
    quantum.submit({} as QuantumJobSpec).failed(new Error('no backend'));
    quantum
      .submit({ ...MAXCUT, backend: 7, qubits: -1, solver: null } as unknown as QuantumJobSpec)
      .cancelled();

    const [none, empty, partial] = spans();
    expect(none!.name).toBe('quantum.job unknown');
    expect(empty!.name).toBe('quantum.job unknown');
    expect(empty!.attributes).toEqual(
      expect.objectContaining({
        'quantum.provider': 'unknown',
        'quantum.backend': 'unknown',
        'quantum.problem.type': 'unknown',
        'quantum.qubits': 0,
      }),
    );
    // The valid fields are kept.
    expect(partial!.name).toBe('quantum.job maxcut');
    expect(partial!.attributes).toMatchObject({
      'quantum.provider': 'ibm',
      'quantum.backend': 'unknown',
      'quantum.qubits': 0,
      'quantum.shots': 1024,
    });
    expect(partial!.attributes).not.toHaveProperty('quantum.solver');
    expect(sextant.errors.counts().get('quantum_submit')).toBe(3);
    expect(await metric('quantum_jobs_total', { quantum_provider: 'unknown', outcome: 'completed' })).toBe(1);
    expect(await metric('quantum_jobs_total', { quantum_provider: 'unknown', outcome: 'failed' })).toBe(1);
    expect(await metric('quantum_active_jobs', { quantum_provider: 'unknown' })).toBe(0);
  });

  it('instruments a breaker without options under provider unknown, and ignores what is not a breaker', async () => {
    const { quantum, metric, sextant } = harness();
    const breaker = new CircuitBreaker(async () => 'ok');
    try {
      let dispose: () => void = () => undefined;
      expect(() => {
        dispose = quantum.instrumentBreaker(breaker, undefined as unknown as { provider: string });
      }).not.toThrow();
      await breaker.fire();
      expect(
        await metric('quantum_circuit_breaker_events_total', {
          quantum_provider: 'unknown',
          event: 'success',
        }),
      ).toBe(1);
      expect(() => dispose()).not.toThrow();
      expect(() =>
        quantum.instrumentBreaker(null as unknown as CircuitBreakerLike, { provider: 'ibm' })(),
      ).not.toThrow();
      expect(sextant.errors.counts().get('quantum_breaker')).toBe(2);
    } finally {
      breaker.shutdown();
    }
  });
});

describe('quantum job across processes', () => {
  it('continues a handed-off job in the same trace, with its state and request id', async () => {
    const { quantum, spans, metric, records } = harness();
    const carrier = runWithRequestId('req-42', () => {
      const job = quantum.submit(MAXCUT);
      job.queued({ providerJobId: 'cq-9' });
      return job.handOff();
    });
    expect(Object.keys(carrier).sort()).toEqual(['sextant-quantum-job', 'traceparent', 'x-request-id']);
    for (const value of Object.values(carrier)) expect(typeof value).toBe('string');
    expect(await metric('quantum_active_jobs', IBM)).toBe(0);

    // Another process: nothing of the first one's context is active, only the carrier.
    const wire = JSON.parse(JSON.stringify(carrier)) as Record<string, string>;
    const resumed = context.with(ROOT_CONTEXT, () => quantum.resume(wire));
    expect(resumed.state).toBe('queued');
    expect(await metric('quantum_active_jobs', IBM)).toBe(1);
    resumed.running();
    resumed.completed({ cost: 2 });

    const [first, second] = spans();
    expect(first!.events.map((e) => e.name)).toEqual(['quantum.job.queued', 'quantum.job.handed_off']);
    expect(second!.spanContext().traceId).toBe(first!.spanContext().traceId);
    expect(second!.parentSpanContext?.spanId).toBe(first!.spanContext().spanId);
    expect(second!.attributes).toMatchObject({
      'quantum.provider': 'ibm',
      'quantum.job.id': 'cq-9',
      'quantum.job.state': 'queued',
      'quantum.job.outcome': 'completed',
    });
    expect(second!.events.map((e) => e.name)).toEqual(['quantum.job.running', 'quantum.job.completed']);
    expect(await metric('quantum_active_jobs', IBM)).toBe(0);
    expect(await metric('quantum_jobs_total', { ...IBM, outcome: 'completed' })).toBe(1);
    expect(await metric('quantum_job_phase_duration_seconds_count', { ...IBM, phase: 'queued' })).toBe(1);
    expect(records().find((r) => r.msg === 'quantum job completed')).toMatchObject({
      request_id: 'req-42',
      trace_id: first!.spanContext().traceId,
    });
  });

  it('resumes from a carrier without job state as an unknown job, reporting it', async () => {
    const { quantum, metric, sextant } = harness();
    const job = quantum.resume({ [QUANTUM_JOB_CARRIER_KEY]: '{"provider":1}' });
    job.completed();
    expect(sextant.errors.counts().get('quantum_resume')).toBe(1);
    expect(await metric('quantum_jobs_total', { quantum_provider: 'unknown', outcome: 'completed' })).toBe(1);
    expect(() => quantum.resume(null as unknown as Record<string, string>).cancelled()).not.toThrow();
  });
});

describe('circuit breaker instrumentation', () => {
  it('follows a real opossum breaker through open, half-open and closed', async () => {
    const { quantum, metric, records } = harness();
    let healthy = false;
    const breaker = new CircuitBreaker(
      async () => {
        if (!healthy) throw new Error('provider unavailable');
        return 'ok';
      },
      { name: 'ibm-runtime', resetTimeout: 50, errorThresholdPercentage: 50, volumeThreshold: 1 },
    );
    const dispose = quantum.instrumentBreaker(breaker, { provider: 'ibm' });
    try {
      expect(await metric('quantum_circuit_breaker_state', IBM)).toBe(0);
      await expect(breaker.fire()).rejects.toThrow('provider unavailable');
      expect(breaker.opened).toBe(true);
      expect(await metric('quantum_circuit_breaker_state', IBM)).toBe(2);
      await expect(breaker.fire()).rejects.toThrow();
      expect(records().filter((r) => r.msg === 'quantum circuit breaker opened')).toEqual([
        expect.objectContaining({
          level: 'warn',
          quantum_provider: 'ibm',
          circuit_breaker: 'ibm-runtime',
          circuit_breaker_state: 'open',
        }),
      ]);

      await expect.poll(() => breaker.halfOpen, { timeout: 2000, interval: 10 }).toBe(true);
      expect(await metric('quantum_circuit_breaker_state', IBM)).toBe(1);
      healthy = true;
      await expect(breaker.fire()).resolves.toBe('ok');
      expect(breaker.closed).toBe(true);
      expect(await metric('quantum_circuit_breaker_state', IBM)).toBe(0);
      expect(
        records()
          .map((r) => r.circuit_breaker_state)
          .filter(Boolean),
      ).toEqual(['open', 'half_open', 'closed']);
      expect(await metric('quantum_circuit_breaker_events_total', { ...IBM, event: 'failure' })).toBe(1);
      expect(await metric('quantum_circuit_breaker_events_total', { ...IBM, event: 'reject' })).toBe(1);
      expect(await metric('quantum_circuit_breaker_events_total', { ...IBM, event: 'success' })).toBe(1);

      dispose();
      breaker.open();
      expect(await metric('quantum_circuit_breaker_state', IBM)).toBe(0);
    } finally {
      breaker.shutdown();
    }
  });

  it('counts a timed-out call once, as timeout, and its fallback apart', async () => {
    const { quantum, metric, sextant } = harness();
    const breaker = new CircuitBreaker(() => sleep(200), { timeout: 20, volumeThreshold: 100 });
    breaker.fallback(() => 'classical');
    const dispose = quantum.instrumentBreaker(breaker, { provider: 'ibm' });
    try {
      await expect(breaker.fire()).resolves.toBe('classical');
      expect(await breakerOutcomes(metric)).toEqual({ timeout: 1 });
      expect(await metric('quantum_circuit_breaker_fallbacks_total', IBM)).toBe(1);
      expect(promtoolCheck((await sextant.metrics.render()).body)).toEqual({ status: 0, problems: '' });
      // A call failing on its own is a failure, not a timeout.
      const failing = new CircuitBreaker(
        async () => {
          throw new Error('provider unavailable');
        },
        { timeout: 1000, volumeThreshold: 100 },
      );
      const stop = quantum.instrumentBreaker(failing, { provider: 'ibm' });
      await expect(failing.fire()).rejects.toThrow('provider unavailable');
      expect(await breakerOutcomes(metric)).toEqual({ timeout: 1, failure: 1 });
      stop();
      failing.shutdown();
    } finally {
      dispose();
      breaker.shutdown();
    }
  });

  it('reads the state of a breaker that is already open', async () => {
    const { quantum, metric } = harness();
    const breaker = new CircuitBreaker(async () => 'ok', { resetTimeout: 60_000 });
    breaker.open();
    const dispose = quantum.instrumentBreaker(breaker, { provider: 'dwave' });
    expect(await metric('quantum_circuit_breaker_state', { quantum_provider: 'dwave' })).toBe(2);
    dispose();
    breaker.shutdown();
  });
});
