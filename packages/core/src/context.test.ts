import { context, createContextKey, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import {
  contextWithSpan,
  contextWithValue,
  createRequestContext,
  createRequestState,
  ensureContextManager,
  getRequestState,
} from './context.ts';

const span = trace.wrapSpanContext({
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: 1,
});
const kOther = createContextKey('test.other');

describe('createRequestContext', () => {
  it('reads as the span and state set on the parent, and the parent’s own values', () => {
    const parent = ROOT_CONTEXT.setValue(kOther, 'from the parent');
    const state = createRequestState('req-1');
    const ctx = createRequestContext(parent, span, state);
    expect(trace.getSpan(ctx)).toBe(span);
    expect(getRequestState(ctx)).toBe(state);
    expect(ctx.getValue(kOther)).toBe('from the parent');
    expect(getRequestState(parent)).toBeUndefined();
  });

  it('without a span, shows the parent’s span', () => {
    const parent = trace.setSpan(ROOT_CONTEXT, span);
    const ctx = createRequestContext(parent, undefined, createRequestState('req-2'));
    expect(trace.getSpan(ctx)).toBe(span);
  });

  it('derives contexts that keep everything, and leaves itself unchanged', () => {
    const state = createRequestState('req-3');
    const ctx = createRequestContext(ROOT_CONTEXT, span, state);
    const child = trace.wrapSpanContext({ ...span.spanContext(), spanId: '00f067aa0ba902b7' });
    const derived = trace.setSpan(ctx, child).setValue(kOther, 'added');
    expect(trace.getSpan(derived)).toBe(child);
    expect(getRequestState(derived)).toBe(state);
    expect(derived.getValue(kOther)).toBe('added');
    expect(trace.getSpan(ctx)).toBe(span);
    expect(ctx.getValue(kOther)).toBeUndefined();

    const withoutSpan = trace.deleteSpan(ctx);
    expect(trace.getSpan(withoutSpan)).toBeUndefined();
    expect(getRequestState(withoutSpan)).toBe(state);
    expect(trace.getSpan(ctx)).toBe(span);
  });
});

describe('contextWithSpan', () => {
  it('reads as the span set on the parent, and the parent’s own values', () => {
    const parent = createRequestContext(
      ROOT_CONTEXT.setValue(kOther, 'from the parent'),
      undefined,
      createRequestState('req-4'),
    );
    const ctx = contextWithSpan(parent, span);
    expect(trace.getSpan(ctx)).toBe(span);
    expect(trace.getSpanContext(ctx)).toEqual(span.spanContext());
    expect(ctx.getValue(kOther)).toBe('from the parent');
    expect(getRequestState(ctx)?.requestId).toBe('req-4');
    expect(trace.getSpan(parent)).toBeUndefined();
  });

  it('hides the parent’s span', () => {
    const parentSpan = trace.wrapSpanContext({ ...span.spanContext(), spanId: '00f067aa0ba902b7' });
    const ctx = contextWithSpan(trace.setSpan(ROOT_CONTEXT, parentSpan), span);
    expect(trace.getSpan(ctx)).toBe(span);
  });

  it('derives contexts that keep everything, and leaves itself unchanged', () => {
    const ctx = contextWithSpan(ROOT_CONTEXT.setValue(kOther, 'from the parent'), span);
    const child = trace.wrapSpanContext({ ...span.spanContext(), spanId: '00f067aa0ba902b7' });
    const kAdded = createContextKey('test.added');
    const derived = trace.setSpan(ctx.setValue(kAdded, 'added'), child);
    expect(trace.getSpan(derived)).toBe(child);
    expect(derived.getValue(kAdded)).toBe('added');
    expect(derived.getValue(kOther)).toBe('from the parent');
    expect(trace.getSpan(ctx.setValue(kAdded, 'again'))).toBe(span);
    expect(trace.getSpan(ctx)).toBe(span);
    expect(ctx.getValue(kAdded)).toBeUndefined();

    const withoutSpan = trace.deleteSpan(ctx);
    expect(trace.getSpan(withoutSpan)).toBeUndefined();
    expect(withoutSpan.getValue(kOther)).toBe('from the parent');
    expect(trace.getSpan(ctx)).toBe(span);
  });

  it('is the active context inside context.with, nested under another', () => {
    ensureContextManager();
    const outer = trace.wrapSpanContext({ ...span.spanContext(), spanId: '00f067aa0ba902b7' });
    const seen = context.with(contextWithSpan(ROOT_CONTEXT, outer), () =>
      context.with(contextWithSpan(context.active(), span), () => trace.getActiveSpan()),
    );
    expect(seen).toBe(span);
  });
});

describe('contextWithValue', () => {
  const kOwn = createContextKey('test.own');

  it('reads as parent.setValue would, and leaves the parent unchanged', () => {
    const parent = trace.setSpan(ROOT_CONTEXT.setValue(kOther, 'from the parent'), span);
    const ctx = contextWithValue(parent, kOwn, 'own');
    expect(ctx.getValue(kOwn)).toBe('own');
    expect(ctx.getValue(kOther)).toBe('from the parent');
    expect(trace.getSpan(ctx)).toBe(span);
    expect(parent.getValue(kOwn)).toBeUndefined();
    expect(contextWithValue(ROOT_CONTEXT.setValue(kOwn, 'old'), kOwn, 'new').getValue(kOwn)).toBe('new');
  });

  it('derives contexts that keep its value, and deletes it like any other', () => {
    const ctx = contextWithValue(ROOT_CONTEXT.setValue(kOther, 'from the parent'), kOwn, 'own');
    const derived = ctx.setValue(kOther, 'replaced');
    expect(derived.getValue(kOwn)).toBe('own');
    expect(derived.getValue(kOther)).toBe('replaced');
    expect(ctx.getValue(kOther)).toBe('from the parent');
    const without = ctx.deleteValue(kOwn);
    expect(without.getValue(kOwn)).toBeUndefined();
    expect(without.getValue(kOther)).toBe('from the parent');
    expect(ctx.getValue(kOwn)).toBe('own');
  });
});
