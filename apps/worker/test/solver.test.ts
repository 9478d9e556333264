import { setTimeout as sleep } from 'node:timers/promises';
import type { Span } from '@opentelemetry/api';
import { createSextant, type Sextant } from '@sextant/core';
import { type MaxCutProblem, type Problem, problemSize, validateProblem } from 'job-store';
import { afterEach, describe, expect, it } from 'vitest';
import { anneal, bruteForce } from '../src/solver/classical.ts';
import {
  createSimulatedProvider,
  ProviderFailureError,
  ProviderOutageError,
  QuotaExhaustedError,
  type SimulatedProviderOptions,
} from '../src/solver/provider.ts';
import { createRandom, SolverConfigError } from '../src/solver/settings.ts';
import { createSolver, InvalidProblemError, type SolveOutcome } from '../src/solver/solve.ts';
import { SQUARE } from './fixtures.ts';

const PROVIDER = 'test-annealer';
/** A fast, reliable provider; tests override what they exercise. */
const FAST: SimulatedProviderOptions = {
  name: PROVIDER,
  backend: 'sim-test',
  queueMs: 5,
  latencyMs: 5,
  failureRate: 0,
  shots: 50,
  seed: 7,
  env: {},
};

function randomGraph(vertices: number, density: number, seed: number, weighted: boolean): MaxCutProblem {
  const random = createRandom(seed);
  const edges: Array<[number, number]> = [];
  const weights: number[] = [];
  for (let a = 0; a < vertices; a++) {
    for (let b = a + 1; b < vertices; b++) {
      if (random() < density) {
        edges.push([a, b]);
        weights.push(weighted ? Math.round(random() * 9) + 1 : 1);
      }
    }
  }
  edges.push([0, vertices - 1]);
  weights.push(1);
  return weighted ? { type: 'maxcut', edges, weights } : { type: 'maxcut', edges };
}

function randomQubo(size: number, seed: number): Problem {
  const random = createRandom(seed);
  const matrix = Array.from({ length: size }, (_, i) =>
    Array.from({ length: size }, (_, j) => (j >= i ? Math.round(random() * 20 - 10) : 0)),
  );
  return { type: 'qubo', matrix };
}

function cutOf(problem: MaxCutProblem, assignment: number[]): number {
  let cut = 0;
  problem.edges.forEach(([a, b], e) => {
    if (assignment[a] !== assignment[b]) cut += problem.weights?.[e] ?? 1;
  });
  return cut;
}

/** The value of one series in Prometheus text, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    const present = labelText.split(',');
    if (wanted.every((pair) => present.includes(pair))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('classical solver', () => {
  it('finds the 4-cycle max cut of 4, alternating sides', () => {
    const exact = bruteForce(SQUARE);
    const annealed = anneal(SQUARE, { seed: 3 });
    expect(exact.value).toBe(4);
    expect(annealed.value).toBe(4);
    expect(annealed.energy).toBe(-4);
    expect(annealed.assignment[0]).not.toBe(annealed.assignment[1]);
    expect(annealed.assignment[0]).toBe(annealed.assignment[2]);
    expect(annealed.iterations).toBeGreaterThan(0);
  });

  it('matches brute force on weighted and unweighted graphs and on QUBOs of up to 16 variables', () => {
    const problems: Problem[] = [
      randomGraph(8, 0.5, 1, false),
      randomGraph(12, 0.4, 2, true),
      randomGraph(16, 0.3, 3, true),
      randomQubo(10, 4),
      randomQubo(14, 5),
    ];
    for (const problem of problems) {
      const exact = bruteForce(problem);
      const annealed = anneal(problem, { seed: 11 });
      expect(annealed.value, JSON.stringify(problem)).toBe(exact.value);
      if (problem.type === 'maxcut') expect(cutOf(problem, annealed.assignment)).toBe(annealed.value);
    }
  });

  it('reads a symmetric and an upper-triangular QUBO as the same xᵀQx', () => {
    const upper: Problem = {
      type: 'qubo',
      matrix: [
        [-1, 4],
        [0, -1],
      ],
    };
    const symmetric: Problem = {
      type: 'qubo',
      matrix: [
        [-1, 2],
        [2, -1],
      ],
    };
    // x = (1, 0) or (0, 1): energy -1; x = (1, 1): -1 - 1 + 4 = 2.
    expect(bruteForce(upper).value).toBe(-1);
    expect(bruteForce(symmetric).value).toBe(-1);
    expect(anneal(symmetric).assignment.reduce((sum, x) => sum + x, 0)).toBe(1);
  });

  it('is deterministic for a seed', () => {
    const problem = randomGraph(40, 0.2, 9, true);
    expect(anneal(problem, { seed: 5 })).toMatchObject({
      assignment: anneal(problem, { seed: 5 }).assignment,
    });
  });

  it('refuses brute force past its limit', () => {
    expect(() => bruteForce(randomQubo(21, 1))).toThrow(/at most 20 variables, got 21/);
  });
});

describe('problem validation', () => {
  it.each([
    [null, 'the problem must be a JSON object'],
    [{ type: 'tsp' }, '"type" must be "maxcut" or "qubo", got "tsp"'],
    [{ type: 'maxcut' }, '"edges" must be an array of [vertex, vertex] pairs'],
    [{ type: 'maxcut', edges: [] }, '"edges" must hold at least one edge'],
    [
      { type: 'maxcut', edges: [[0, 1], [1]] },
      '"edges[1]" must be a pair of non-negative integers, like [0, 1]',
    ],
    [{ type: 'maxcut', edges: [[0, -1]] }, '"edges[0]" must be a pair of non-negative integers'],
    [{ type: 'maxcut', edges: [[2, 2]] }, '"edges[0]" joins vertex 2 to itself'],
    [{ type: 'maxcut', edges: [[0, 64]] }, '"edges[0]" names vertex 64: vertices are numbered from 0 to 63'],
    [
      { type: 'maxcut', edges: [[0, 1]], weights: [1, 2] },
      '"weights" must be an array of numbers, one per edge (1)',
    ],
    [{ type: 'maxcut', edges: [[0, 1]], weights: ['1'] }, '"weights[0]" must be a finite number'],
    [{ type: 'qubo' }, '"matrix" must be a non-empty square array'],
    [
      { type: 'qubo', matrix: [[1, 2], [3]] },
      '"matrix[1]" must be an array of 2 numbers: the matrix must be square',
    ],
    [
      {
        type: 'qubo',
        matrix: [
          [1, Number.NaN],
          [0, 1],
        ],
      },
      '"matrix[0][1]" must be a finite number',
    ],
    [
      { type: 'qubo', matrix: Array.from({ length: 65 }, () => []) },
      '"matrix" may have at most 64 rows (variables), got 65',
    ],
  ])('rejects %j: %s', (body, message) => {
    const validation = validateProblem(body);
    expect(validation.ok).toBe(false);
    if (!validation.ok) expect(validation.message).toContain(message);
  });

  it('accepts max-cut and QUBO problems and sizes them', () => {
    const maxcut = validateProblem({ type: 'maxcut', edges: [[0, 5]], weights: [2.5] });
    expect(maxcut).toEqual({ ok: true, problem: { type: 'maxcut', edges: [[0, 5]], weights: [2.5] } });
    if (maxcut.ok) expect(problemSize(maxcut.problem)).toBe(6);
    const qubo = validateProblem({
      type: 'qubo',
      matrix: [
        [1, -2],
        [0, 1],
      ],
      extra: true,
    });
    expect(qubo).toEqual({
      ok: true,
      problem: {
        type: 'qubo',
        matrix: [
          [1, -2],
          [0, 1],
        ],
      },
    });
  });
});

describe('simulated provider', () => {
  it('answers with valid, good samples and reports its phases', async () => {
    const provider = createSimulatedProvider(FAST);
    const phases: string[] = [];
    const problem = randomGraph(12, 0.4, 2, true);
    const answer = await provider.sample(problem, {
      onQueued: (id) => phases.push(`queued ${id.length > 0}`),
      onRunning: () => phases.push('running'),
    });
    expect(phases).toEqual(['queued true', 'running']);
    expect(answer.assignment).toHaveLength(12);
    expect(answer.assignment.every((x) => x === 0 || x === 1)).toBe(true);
    expect(cutOf(problem, answer.assignment)).toBe(answer.value);
    expect(answer.value).toBe(bruteForce(problem).value);
    expect(answer.cost).toBeCloseTo(50 * 0.001);
    expect(answer.occurrences).toBeGreaterThan(0);
  });

  it('fails with typed errors: outage, failure, quota', async () => {
    await expect(createSimulatedProvider({ ...FAST, outage: true }).sample(SQUARE)).rejects.toBeInstanceOf(
      ProviderOutageError,
    );
    await expect(createSimulatedProvider({ ...FAST, failureRate: 1 }).sample(SQUARE)).rejects.toBeInstanceOf(
      ProviderFailureError,
    );
    const limited = createSimulatedProvider({ ...FAST, quota: 1 });
    await limited.sample(SQUARE);
    const refusal = limited.sample(SQUARE);
    await expect(refusal).rejects.toBeInstanceOf(QuotaExhaustedError);
    await expect(refusal).rejects.toThrow('test-annealer: quota of 1 jobs exhausted');
    expect(limited.accepted).toBe(1);
  });

  it('stops waiting when the caller aborts', async () => {
    const provider = createSimulatedProvider({ ...FAST, queueMs: 60_000 });
    const call = new AbortController();
    const pending = provider.sample(SQUARE, { signal: call.signal });
    call.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('reads its settings from the environment, over the options', () => {
    const provider = createSimulatedProvider({
      ...FAST,
      env: {
        QUANTUM_PROVIDER_NAME: 'dwave',
        QUANTUM_BACKEND: 'Advantage2_system1.3',
        QUANTUM_LATENCY_MS: '250',
        QUANTUM_QUEUE_MS: '0',
        QUANTUM_FAILURE_RATE: '0.25',
        QUANTUM_OUTAGE: 'TRUE',
        QUANTUM_SHOTS: '1000',
        QUANTUM_QUOTA: '10',
      },
    });
    expect(provider.settings).toMatchObject({
      name: 'dwave',
      backend: 'Advantage2_system1.3',
      latencyMs: 250,
      queueMs: 0,
      failureRate: 0.25,
      outage: true,
      shots: 1000,
      quota: 10,
    });
    expect(createSimulatedProvider({ env: {} }).settings).toEqual({
      name: 'simulated-annealer',
      backend: 'sim-2000q',
      queueMs: 100,
      latencyMs: 200,
      failureRate: 0.1,
      outage: false,
      shots: 100,
      quota: Number.POSITIVE_INFINITY,
      costPerShot: 0.001,
    });
  });

  it.each([
    [
      { failureRate: 2 },
      'QUANTUM_FAILURE_RATE',
      'option failureRate (env QUANTUM_FAILURE_RATE) = 2 is invalid: expected a number from 0 to 1',
    ],
    [
      { latencyMs: -1 },
      'QUANTUM_LATENCY_MS',
      'option latencyMs (env QUANTUM_LATENCY_MS) = -1 is invalid: expected an integer from 0 to 3600000',
    ],
    [
      { shots: 1.5 },
      'QUANTUM_SHOTS',
      'option shots (env QUANTUM_SHOTS) = 1.5 is invalid: expected an integer from 1 to 100000',
    ],
    [
      { outage: 'yes' },
      'QUANTUM_OUTAGE',
      'option outage (env QUANTUM_OUTAGE) = "yes" is invalid: expected true or false',
    ],
    [
      { name: 'has space' },
      'QUANTUM_PROVIDER_NAME',
      'option name (env QUANTUM_PROVIDER_NAME) = "has space" is invalid',
    ],
    [
      { env: { QUANTUM_QUEUE_MS: 'soon' } },
      'QUANTUM_QUEUE_MS',
      'QUANTUM_QUEUE_MS="soon" is invalid: expected an integer from 0 to 3600000',
    ],
    [
      { env: { QUANTUM_OUTAGE: '1' } },
      'QUANTUM_OUTAGE',
      'QUANTUM_OUTAGE="1" is invalid: expected true or false',
    ],
    [
      { env: { QUANTUM_QUOTA: '-3' } },
      'QUANTUM_QUOTA',
      'QUANTUM_QUOTA="-3" is invalid: expected an integer >= 0',
    ],
  ])('refuses %j', (options, variable, message) => {
    const build = () => createSimulatedProvider({ env: {}, ...(options as SimulatedProviderOptions) });
    expect(build).toThrow(SolverConfigError);
    expect(build).toThrow(message);
    try {
      build();
    } catch (error) {
      expect((error as SolverConfigError).variable).toBe(variable);
    }
  });

  it('validates changes made at run time', () => {
    const provider = createSimulatedProvider(FAST);
    provider.configure({ outage: true });
    expect(provider.settings.outage).toBe(true);
    expect(() => provider.configure({ failureRate: -0.1 })).toThrow(
      'failureRate (env QUANTUM_FAILURE_RATE) = -0.1',
    );
    expect(provider.settings.failureRate).toBe(0);
  });
});

describe('solver', () => {
  let sextant: Sextant | undefined;
  let close: (() => void) | undefined;
  let lines: string[] = [];

  function start() {
    lines = [];
    sextant = createSextant({
      serviceName: 'worker-test',
      tracing: { exporter: 'memory' },
      logs: { destination: { write: (line: string) => void lines.push(line) } },
      env: {},
    });
    return sextant;
  }

  afterEach(async () => {
    close?.();
    close = undefined;
    await sextant?.shutdown();
    sextant = undefined;
  });

  /** Runs `solve` inside a parent span, as the worker does inside the job's span. */
  async function inJobSpan(instance: Sextant, run: () => Promise<SolveOutcome>) {
    return instance.tracer.startActiveSpan('process jobs', async (span: Span) => {
      try {
        return { outcome: await run(), parentSpanId: span.spanContext().spanId };
      } finally {
        span.end();
      }
    });
  }

  const quantumSpans = (instance: Sextant) =>
    instance.tracing.finishedSpans().filter((span) => span.name.startsWith('quantum.job'));

  async function metrics(instance: Sextant) {
    return (await instance.metrics.render()).body;
  }

  it('answers on quantum when the provider is healthy, child spans and metrics by provider and outcome', async () => {
    const instance = start();
    const solver = createSolver(instance, { simulated: FAST, env: {} });
    close = solver.close;

    const parents: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { outcome, parentSpanId } = await inJobSpan(instance, () =>
        solver.solve({ id: `job-${i}`, problem: SQUARE }),
      );
      parents.push(parentSpanId);
      expect(outcome).toMatchObject({
        solver: 'quantum',
        provider: PROVIDER,
        backend: 'sim-test',
        result: { value: 4 },
        cost: 0.05,
      });
      expect(outcome.fallbackReason).toBeUndefined();
      expect(cutOf(SQUARE, outcome.result.assignment)).toBe(4);
      expect(outcome.durations.classicalMs).toBeGreaterThan(0);
    }

    const spans = quantumSpans(instance);
    expect(spans).toHaveLength(3);
    for (const [i, span] of spans.entries()) {
      expect(span.name).toBe('quantum.job maxcut');
      expect(span.parentSpanContext?.spanId).toBe(parents[i]);
      expect(span.attributes).toMatchObject({
        'quantum.provider': PROVIDER,
        'quantum.backend': 'sim-test',
        'quantum.problem.type': 'maxcut',
        'quantum.problem.size': 4,
        'quantum.qubits': 4,
        'quantum.shots': 50,
        'quantum.solver': 'quantum_annealing',
        'quantum.job.outcome': 'completed',
        'quantum.result': 4,
        'quantum.cost': 0.05,
      });
      expect(typeof span.attributes['quantum.job.id']).toBe('string');
      expect(span.events.map((event) => event.name)).toEqual([
        'quantum.job.queued',
        'quantum.job.running',
        'quantum.job.completed',
      ]);
    }

    const text = await metrics(instance);
    expect(sample(text, 'quantum_jobs_total', { quantum_provider: PROVIDER, outcome: 'completed' })).toBe(3);
    expect(sample(text, 'quantum_jobs_total', { quantum_provider: PROVIDER, outcome: 'fallback' }) ?? 0).toBe(
      0,
    );
    expect(sample(text, 'quantum_active_jobs', { quantum_provider: PROVIDER })).toBe(0);
    expect(sample(text, 'quantum_circuit_breaker_state', { quantum_provider: PROVIDER })).toBe(0);
    expect(
      sample(text, 'quantum_circuit_breaker_events_total', { quantum_provider: PROVIDER, event: 'success' }),
    ).toBe(3);
    expect(sample(text, 'quantum_advantage_ratio', { quantum_problem_type: 'maxcut' })).toBeGreaterThan(0);
    expect(
      sample(text, 'quantum_job_phase_duration_seconds_count', {
        quantum_provider: PROVIDER,
        phase: 'running',
      }),
    ).toBe(3);
  });

  it('the fallback path end to end: an outage opens the breaker, jobs complete classically, and the breaker closes when the provider returns', async () => {
    const instance = start();
    const provider = createSimulatedProvider({ ...FAST, outage: true });
    const resetMs = 150;
    const solver = createSolver(instance, { provider, breakerResetMs: resetMs, env: {} });
    close = solver.close;
    const graph = randomGraph(10, 0.5, 4, true);
    const optimum = bruteForce(graph).value;

    const during: SolveOutcome[] = [];
    for (let i = 0; i < 5; i++) during.push(await solver.solve({ id: `outage-${i}`, problem: graph }));
    expect(during.map((outcome) => outcome.solver)).toEqual(Array(5).fill('classical'));
    // volumeThreshold 3: the third failure opens the breaker, later calls are not let through.
    expect(during.map((outcome) => outcome.fallbackReason)).toEqual([
      'provider_outage',
      'provider_outage',
      'provider_outage',
      'circuit_open',
      'circuit_open',
    ]);
    for (const outcome of during) {
      expect(outcome.result.value).toBe(optimum);
      expect(outcome.durations.quantumMs).toBeUndefined();
    }
    expect(provider.accepted).toBe(0);

    let text = await metrics(instance);
    expect(sample(text, 'quantum_circuit_breaker_state', { quantum_provider: PROVIDER })).toBe(2);
    expect(sample(text, 'quantum_jobs_total', { quantum_provider: PROVIDER, outcome: 'fallback' })).toBe(5);
    const fallbacks = { quantum_provider: PROVIDER, reason: 'provider_outage' };
    expect(sample(text, 'quantum_classical_fallbacks_total', fallbacks)).toBe(3);
    expect(sample(text, 'quantum_classical_fallbacks_total', { ...fallbacks, reason: 'circuit_open' })).toBe(
      2,
    );
    expect(
      sample(text, 'quantum_circuit_breaker_events_total', { quantum_provider: PROVIDER, event: 'failure' }),
    ).toBe(3);
    expect(
      sample(text, 'quantum_circuit_breaker_events_total', { quantum_provider: PROVIDER, event: 'reject' }),
    ).toBe(2);
    expect(
      sample(text, 'quantum_job_phase_duration_seconds_count', {
        quantum_provider: PROVIDER,
        phase: 'fallback',
      }),
    ).toBe(5);

    const spans = quantumSpans(instance);
    expect(spans.map((span) => span.attributes['quantum.fallback.reason'])).toEqual([
      'provider_outage',
      'provider_outage',
      'provider_outage',
      'circuit_open',
      'circuit_open',
    ]);
    for (const span of spans) {
      expect(span.attributes).toMatchObject({
        'quantum.job.outcome': 'fallback',
        'quantum.fallback.solver': 'simulated_annealing',
      });
      expect(span.events.map((event) => event.name)).not.toContain('quantum.job.queued');
    }
    // The provider's error is on the span; the breaker's own refusal is not an error worth an event.
    expect(spans[0]!.events.find((event) => event.name === 'exception')?.attributes).toMatchObject({
      'exception.type': 'ProviderOutageError',
    });
    expect(spans[3]!.events.some((event) => event.name === 'exception')).toBe(false);
    const records = lines.map((line) => JSON.parse(line));
    expect(records.filter((record) => record.msg === 'quantum job fallback')).toHaveLength(5);
    expect(records.find((record) => record.msg === 'quantum circuit breaker opened')).toMatchObject({
      quantum_provider: PROVIDER,
      circuit_breaker_state: 'open',
    });

    provider.configure({ outage: false });
    // The breaker turns half-open on its own after resetMs; wait for the gauge to say so.
    for (let waited = 0; waited < 100; waited++) {
      if (
        sample(await metrics(instance), 'quantum_circuit_breaker_state', { quantum_provider: PROVIDER }) === 1
      )
        break;
      await sleep(resetMs / 5);
    }
    text = await metrics(instance);
    expect(sample(text, 'quantum_circuit_breaker_state', { quantum_provider: PROVIDER })).toBe(1);

    const after = await solver.solve({ id: 'recovered', problem: graph });
    expect(after).toMatchObject({ solver: 'quantum', provider: PROVIDER });
    expect(after.fallbackReason).toBeUndefined();
    expect(cutOf(graph, after.result.assignment)).toBe(after.result.value);
    text = await metrics(instance);
    expect(sample(text, 'quantum_circuit_breaker_state', { quantum_provider: PROVIDER })).toBe(0);
    expect(sample(text, 'quantum_jobs_total', { quantum_provider: PROVIDER, outcome: 'completed' })).toBe(1);
    expect(lines.some((line) => JSON.parse(line).msg === 'quantum circuit breaker closed')).toBe(true);
  });

  it('falls back on a timeout, an exhausted quota and a failed job', async () => {
    const instance = start();
    const slow = createSimulatedProvider({ ...FAST, latencyMs: 10_000 });
    const slowSolver = createSolver(instance, { provider: slow, timeoutMs: 30, env: {} });
    const timedOut = await slowSolver.solve({ id: 'slow', problem: SQUARE });
    slowSolver.close();
    expect(timedOut).toMatchObject({ solver: 'classical', fallbackReason: 'timeout', result: { value: 4 } });

    const limited = createSimulatedProvider({ ...FAST, name: 'limited', quota: 1 });
    const limitedSolver = createSolver(instance, { provider: limited, env: {} });
    close = limitedSolver.close;
    expect((await limitedSolver.solve({ id: 'first', problem: SQUARE })).solver).toBe('quantum');
    const refused = await limitedSolver.solve({ id: 'second', problem: SQUARE });
    expect(refused).toMatchObject({
      solver: 'classical',
      fallbackReason: 'quota_exhausted',
      provider: 'limited',
    });

    const [slowSpan, , quotaSpan] = quantumSpans(instance);
    // The provider queued the slow job and started it before the breaker gave up waiting.
    expect(slowSpan!.events.map((event) => event.name)).toEqual([
      'quantum.job.queued',
      'quantum.job.running',
      'exception',
      'quantum.job.fallback',
    ]);
    expect(slowSpan!.attributes['quantum.fallback.reason']).toBe('timeout');
    expect(quotaSpan!.attributes['quantum.fallback.reason']).toBe('quota_exhausted');
    const text = await metrics(instance);
    expect(
      sample(text, 'quantum_classical_fallbacks_total', { quantum_provider: PROVIDER, reason: 'timeout' }),
    ).toBe(1);
    expect(
      sample(text, 'quantum_classical_fallbacks_total', {
        quantum_provider: 'limited',
        reason: 'quota_exhausted',
      }),
    ).toBe(1);

    const failing = createSimulatedProvider({ ...FAST, name: 'failing', failureRate: 1 });
    const failingSolver = createSolver(instance, { provider: failing, env: {} });
    const failed = await failingSolver.solve({ id: 'failing', problem: SQUARE });
    failingSolver.close();
    expect(failed).toMatchObject({
      solver: 'classical',
      fallbackReason: 'provider_error',
      result: { value: 4 },
    });
    const failedSpan = quantumSpans(instance).at(-1)!;
    expect(failedSpan.attributes['quantum.fallback.reason']).toBe('provider_error');
    expect(failedSpan.events.map((event) => event.name)).toContain('exception');
  });

  it('solves QUBOs and throws only for invalid problems', async () => {
    const instance = start();
    const solver = createSolver(instance, { simulated: FAST, env: {} });
    close = solver.close;
    const qubo = randomQubo(8, 3);
    const outcome = await solver.solve({ id: 'qubo', problem: qubo as Problem });
    expect(outcome.solver).toBe('quantum');
    expect(outcome.result.value).toBe(bruteForce(qubo).value);

    const invalid = solver.solve({ id: 'bad', problem: { type: 'maxcut', edges: [] } });
    await expect(invalid).rejects.toBeInstanceOf(InvalidProblemError);
    await expect(invalid).rejects.toThrow('job bad: invalid problem: "edges" must hold at least one edge');
    expect(quantumSpans(instance)).toHaveLength(1);
  });

  it('refuses invalid solver options and environment values', () => {
    const instance = start();
    expect(() => createSolver(instance, { simulated: FAST, timeoutMs: 0, env: {} })).toThrow(
      'option timeoutMs (env QUANTUM_TIMEOUT_MS) = 0 is invalid: expected an integer from 1 to 3600000',
    );
    expect(() =>
      createSolver(instance, { simulated: FAST, env: { QUANTUM_BREAKER_RESET_MS: '5s' } }),
    ).toThrow('QUANTUM_BREAKER_RESET_MS="5s" is invalid: expected an integer from 1 to 3600000');
    expect(() => createSolver(instance, { env: { QUANTUM_FAILURE_RATE: '1.5' } })).toThrow(
      'QUANTUM_FAILURE_RATE="1.5" is invalid: expected a number from 0 to 1',
    );
  });
});
