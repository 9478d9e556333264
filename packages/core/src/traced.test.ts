import { type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resolveConfig } from './config.ts';
import { ensureContextManager } from './context.ts';
import { SextantConfigError } from './errors.ts';
import { createInternalErrorSink } from './internal-errors.ts';
import { Traced, traced } from './traced.ts';
import { createTracing, type Tracing } from './tracing.ts';

let tracing: Tracing;

beforeAll(() => ensureContextManager());

beforeEach(() => {
  const { config } = resolveConfig({ serviceName: 'traced-test', tracing: { exporter: 'memory' }, env: {} });
  tracing = createTracing(config, createInternalErrorSink({ intervalMs: 0, writer: () => undefined }));
});

afterEach(() => tracing.shutdown());

function onlySpan(): ReadableSpan {
  const spans = tracing.finishedSpans();
  expect(spans).toHaveLength(1);
  return spans[0]!;
}

function expectRecordedError(span: ReadableSpan, type: string, message: string): void {
  expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message });
  expect(span.attributes['error.type']).toBe(type);
  expect(span.events.map((e) => e.name)).toEqual(['exception']);
  expect(span.events[0]!.attributes?.['exception.message']).toBe(message);
}

class QuotaError extends Error {}

describe('traced with a settle hook', () => {
  it('lets a deferred result end the span later, in the span context, recording its error once', () => {
    const finishers: Array<(error?: unknown) => void> = [];
    const deferred = { kind: 'deferred' };
    const wrapped = traced('deferred.work', () => deferred, {
      settle: (result, end, spanContext) => {
        if (result !== deferred) return undefined;
        expect(trace.getSpan(spanContext)?.isRecording()).toBe(true);
        finishers.push(end);
        return { wrapped: result };
      },
    });
    expect(wrapped).toEqual({ wrapped: deferred });
    expect(tracing.finishedSpans()).toHaveLength(0);
    finishers[0]!(new QuotaError('quota exhausted'));
    finishers[0]!();
    expectRecordedError(onlySpan(), 'QuotaError', 'quota exhausted');
  });

  it('ends the span at once when the hook declines the result', () => {
    expect(traced('plain', () => 7, { settle: () => undefined })).toBe(7);
    expect(onlySpan().name).toBe('plain');
  });
});

describe('traced', () => {
  it('runs a sync function in an active span and returns its value', () => {
    let seen: Span | undefined;
    const value = traced(
      'compute',
      (span) => {
        seen = span;
        expect(trace.getActiveSpan()).toBe(span);
        return 42;
      },
      { kind: SpanKind.CLIENT, attributes: { 'job.size': 3 } },
    );
    expect(value).toBe(42);
    const span = onlySpan();
    expect(span.spanContext().spanId).toBe(seen!.spanContext().spanId);
    expect(span).toMatchObject({ name: 'compute', kind: SpanKind.CLIENT, ended: true });
    expect(span.attributes).toEqual({ 'job.size': 3 });
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('returns the same promise and ends the span when it resolves, keeping the context across awaits', async () => {
    let release!: (value: string) => void;
    const gate = new Promise<string>((resolve) => {
      release = resolve;
    });
    let pending!: Promise<string>;
    const result = traced('outer', () => {
      pending = (async () => {
        const value = await gate;
        traced('inner', () => undefined);
        return value;
      })();
      return pending;
    });
    expect(result).toBe(pending);
    expect(tracing.finishedSpans()).toHaveLength(0);
    release('done');
    await expect(result).resolves.toBe('done');
    const [inner, outer] = tracing.finishedSpans();
    expect(outer!.name).toBe('outer');
    expect(inner!.name).toBe('inner');
    expect(inner!.parentSpanContext?.spanId).toBe(outer!.spanContext().spanId);
  });

  it('records a throw and rethrows the same error', () => {
    const error = new QuotaError('quota exceeded');
    let caught: unknown;
    try {
      traced('limited', () => {
        throw error;
      });
    } catch (thrown) {
      caught = thrown;
    }
    expect(caught).toBe(error);
    expectRecordedError(onlySpan(), 'QuotaError', 'quota exceeded');
  });

  it('records a rejection and rejects with the same error', async () => {
    const error = new TypeError('bad input');
    await expect(traced('rejects', async () => Promise.reject(error))).rejects.toBe(error);
    expectRecordedError(onlySpan(), 'TypeError', 'bad input');
  });

  it('records a thrown non-Error as type _OTHER', () => {
    expect(() =>
      traced('odd', () => {
        throw 'plain string';
      }),
    ).toThrow('plain string');
    const span = onlySpan();
    expect(span.attributes['error.type']).toBe('_OTHER');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'plain string' });
  });

  it('hands back a lazy thenable as itself: awaited, its then() runs once in the span, which ends when it settles', async () => {
    const seen: Array<string | undefined> = [];
    class LazyQuery {
      thenCalls = 0;
      get [Symbol.toStringTag]() {
        return 'LazyQuery';
      }
      // biome-ignore lint/suspicious/noThenProperty: a query builder is exactly such a thenable.
      then(onFulfilled: (rows: number[]) => unknown, onRejected?: (reason: unknown) => unknown) {
        this.thenCalls++;
        seen.push((trace.getActiveSpan() as unknown as ReadableSpan | undefined)?.name);
        return Promise.resolve([1, 2]).then(onFulfilled, onRejected);
      }
    }
    const query = new LazyQuery();
    const returned = traced('query', () => query);
    // Nothing ran yet, and the caller still holds a LazyQuery.
    expect(query.thenCalls).toBe(0);
    expect(returned).toBeInstanceOf(LazyQuery);
    expect(Object.prototype.toString.call(returned)).toBe('[object LazyQuery]');
    expect(tracing.finishedSpans()).toHaveLength(0);
    expect(await returned).toEqual([1, 2]);
    expect(await returned).toEqual([1, 2]);
    expect(query.thenCalls).toBe(1);
    expect(seen).toEqual(['query']);
    expect(onlySpan().ended).toBe(true);
  });

  it('ends the span at once when a thenable is taken over another way (a batch transaction), with its own methods intact', async () => {
    class BatchableQuery {
      readonly sql = 'SELECT 1';
      // biome-ignore lint/suspicious/noThenProperty: a Prisma query is exactly such a thenable.
      then(onFulfilled: (value: string) => unknown) {
        return Promise.resolve('ran alone').then(onFulfilled);
      }
      requestTransaction(batch: string): string {
        return `${batch}: ${this.sql}`;
      }
    }
    const returned = traced('batched', () => new BatchableQuery());
    expect(returned.requestTransaction('batch')).toBe('batch: SELECT 1');
    expect(onlySpan().ended).toBe(true);
  });

  it('records a lazy thenable that rejects, and rejects with the same error', async () => {
    const error = new RangeError('no such row');
    const failing = {
      // biome-ignore lint/suspicious/noThenProperty: a query builder is exactly such a thenable.
      then(_onFulfilled: unknown, onRejected: (reason: unknown) => unknown) {
        return Promise.reject(error).catch(onRejected);
      },
    };
    await expect(traced('fails', () => failing) as unknown as Promise<unknown>).rejects.toBe(error);
    expectRecordedError(onlySpan(), 'RangeError', 'no such row');
  });

  it('uses the tracer given in options instead of the global one', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    traced('explicit', () => undefined, { tracer: provider.getTracer('elsewhere') });
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['explicit']);
    expect(tracing.finishedSpans()).toEqual([]);
  });
});

class Solver {
  readonly prefix = 'solved';

  solve(a: number, b: number): string {
    return `${this.prefix}:${a + b}`;
  }

  async solveLater(fail: boolean): Promise<string> {
    if (fail) throw new QuotaError('no qubits left');
    return this.prefix;
  }

  static create(): Solver {
    return new Solver();
  }
}

function methodContext(name: string, isStatic = false): ClassMethodDecoratorContext {
  return {
    kind: 'method',
    name,
    static: isStatic,
    private: false,
    access: { has: () => true, get: () => undefined },
    addInitializer: () => undefined,
    metadata: {},
  } as unknown as ClassMethodDecoratorContext;
}

/** Applies the decorator the way TypeScript's experimentalDecorators does. */
function decorateLegacy(target: object, key: string, decorator: ReturnType<typeof Traced>): void {
  const descriptor = Object.getOwnPropertyDescriptor(target, key)!;
  Object.defineProperty(target, key, decorator(target, key, descriptor));
}

describe('@Traced', () => {
  const originals = {
    solve: Object.getOwnPropertyDescriptor(Solver.prototype, 'solve')!,
    solveLater: Object.getOwnPropertyDescriptor(Solver.prototype, 'solveLater')!,
    create: Object.getOwnPropertyDescriptor(Solver, 'create')!,
  };

  afterEach(() => {
    Object.defineProperty(Solver.prototype, 'solve', originals.solve);
    Object.defineProperty(Solver.prototype, 'solveLater', originals.solveLater);
    Object.defineProperty(Solver, 'create', originals.create);
  });

  it('wraps a method with the legacy (target, key, descriptor) signature', () => {
    decorateLegacy(Solver.prototype, 'solve', Traced());
    const solver = new Solver();
    expect(solver.solve(2, 3)).toBe('solved:5');
    expect(onlySpan().name).toBe('Solver.solve');
    expect(Solver.prototype.solve.name).toBe('solve');
    expect(Solver.prototype.solve.length).toBe(2);
  });

  it('names a static method after its class with the legacy signature', () => {
    decorateLegacy(Solver, 'create', Traced());
    expect(Solver.create()).toBeInstanceOf(Solver);
    expect(onlySpan().name).toBe('Solver.create');
  });

  it('wraps a method with the standard (value, context) signature, named after the declaring class', () => {
    Solver.prototype.solve = Traced()(originals.solve.value, methodContext('solve'));
    class FastSolver extends Solver {}
    expect(new FastSolver().solve(1, 1)).toBe('solved:2');
    expect(new Solver().solve(1, 2)).toBe('solved:3');
    expect(tracing.finishedSpans().map((s) => s.name)).toEqual(['Solver.solve', 'Solver.solve']);
    expect(Solver.prototype.solve.name).toBe('solve');
  });

  it('names a static method with the standard signature', () => {
    Solver.create = Traced()(originals.create.value, methodContext('create', true));
    Solver.create();
    expect(onlySpan().name).toBe('Solver.create');
  });

  it('uses the given name and options, and records a rejected async method', async () => {
    decorateLegacy(Solver.prototype, 'solveLater', Traced('solver.run', { kind: SpanKind.PRODUCER }));
    const solver = new Solver();
    await expect(solver.solveLater(false)).resolves.toBe('solved');
    await expect(solver.solveLater(true)).rejects.toBeInstanceOf(QuotaError);
    const [ok, failed] = tracing.finishedSpans();
    expect(ok).toMatchObject({ name: 'solver.run', kind: SpanKind.PRODUCER });
    expect(ok!.status.code).toBe(SpanStatusCode.UNSET);
    expectRecordedError(failed!, 'QuotaError', 'no qubits left');
  });

  it('refuses what is not a method', () => {
    expect(() => Traced()(() => undefined, { kind: 'field', name: 'x' } as never)).toThrow(
      SextantConfigError,
    );
    const getter: PropertyDescriptor = { get: () => 1, configurable: true };
    expect(() => Traced()(Solver.prototype, 'value', getter)).toThrow(/expected a method/);
  });

  describe('with reflect-metadata loaded', () => {
    const store = new WeakMap<object, Map<unknown, unknown>>();
    const api = {
      defineMetadata(key: unknown, value: unknown, target: object) {
        const entries = store.get(target) ?? new Map<unknown, unknown>();
        entries.set(key, value);
        store.set(target, entries);
      },
      getOwnMetadata: (key: unknown, target: object) => store.get(target)?.get(key),
      getOwnMetadataKeys: (target: object) => [...(store.get(target)?.keys() ?? [])],
    };
    const reflect = Reflect as unknown as Record<string, unknown>;

    beforeEach(() => Object.assign(reflect, api));
    afterEach(() => {
      for (const name of Object.keys(api)) delete reflect[name];
    });

    it('copies the metadata other decorators put on the method to the wrapper', () => {
      const route = Symbol('route');
      api.defineMetadata('path', '/solve', originals.solve.value);
      api.defineMetadata(route, { method: 'POST' }, originals.solve.value);
      decorateLegacy(Solver.prototype, 'solve', Traced());
      const wrapper = Solver.prototype.solve;
      expect(wrapper).not.toBe(originals.solve.value);
      expect(api.getOwnMetadata('path', wrapper)).toBe('/solve');
      expect(api.getOwnMetadata(route, wrapper)).toEqual({ method: 'POST' });
    });
  });
});
