import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type BaggageEntry,
  baggageEntryMetadataFromString,
  type Context,
  DiagLogLevel,
  diag,
  propagation,
  ROOT_CONTEXT,
  type SpanContext,
  type TextMapGetter,
  TraceFlags,
  type TraceState,
  trace,
} from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { describe, expect, it } from 'vitest';
import { createRequestState, setRequestState } from './context.ts';
import { createInternalErrorSink } from './internal-errors.ts';
import {
  createPropagator,
  extractContext,
  generateRequestId,
  injectContext,
  sanitizeRequestId,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from './propagation.ts';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const SPAN_ID = 'b7ad6b7169203331';
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`;

const getter: TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key] as string | string[] | undefined,
};
const setter = {
  set: (carrier: Record<string, string>, key: string, value: string) => {
    carrier[key] = value;
  },
};

const traceContext = new W3CTraceContextPropagator();
const baggagePropagator = new W3CBaggagePropagator();

function spanContextOf(carrier: Record<string, unknown>): SpanContext | undefined {
  return trace.getSpanContext(traceContext.extract(ROOT_CONTEXT, carrier, getter));
}

function traceStateOf(tracestate: unknown): TraceState | undefined {
  return spanContextOf({ traceparent: TRACEPARENT, tracestate })?.traceState;
}

function baggageOf(header: unknown): Record<string, string> | undefined {
  const baggage = propagation.getBaggage(
    baggagePropagator.extract(ROOT_CONTEXT, { baggage: header }, getter),
  );
  if (baggage === undefined) return undefined;
  return Object.fromEntries(baggage.getAllEntries().map(([key, entry]) => [key, entry.value]));
}

function contextWith(spanContext: SpanContext, entries?: Record<string, BaggageEntry>): Context {
  const ctx = trace.setSpanContext(ROOT_CONTEXT, spanContext);
  return entries ? propagation.setBaggage(ctx, propagation.createBaggage(entries)) : ctx;
}

/** Deterministic, so a failure reproduces. */
function pseudoRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state / 2 ** 32;
  };
}

describe('W3CTraceContextPropagator.extract: traceparent', () => {
  it('accepts a valid version 00 header and marks the parent remote', () => {
    expect(spanContextOf({ traceparent: TRACEPARENT })).toEqual({
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
    expect(spanContextOf({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-00` })?.traceFlags).toBe(TraceFlags.NONE);
  });

  it.each([
    ['leading space', ` ${TRACEPARENT}`],
    ['leading tab', `\t${TRACEPARENT}`],
    ['trailing space', `${TRACEPARENT} `],
    ['trailing tab', `${TRACEPARENT}\t`],
    ['both sides', `\t ${TRACEPARENT} \t`],
  ])('tolerates optional whitespace (%s)', (_, traceparent) => {
    expect(spanContextOf({ traceparent })?.traceId).toBe(TRACE_ID);
  });

  it.each([
    ['future version, four fields', `cc-${TRACE_ID}-${SPAN_ID}-01`],
    ['future version, extra field after a dash', `cc-${TRACE_ID}-${SPAN_ID}-01-what-the-future-will-be-like`],
  ])('parses a higher version as far as version 00 goes (%s)', (_, traceparent) => {
    expect(spanContextOf({ traceparent })).toMatchObject({
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      traceFlags: 1,
    });
  });

  it('keeps the sampled and random flags and zeroes the flags the spec does not define', () => {
    expect(spanContextOf({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-ff` })?.traceFlags).toBe(0x03);
    expect(spanContextOf({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-09` })?.traceFlags).toBe(0x01);
  });

  const id32 = TRACE_ID;
  const id16 = SPAN_ID;
  it.each([
    // version
    ['version with an illegal first character', `.0-${id32}-${id16}-01`],
    ['version with an illegal second character', `0.-${id32}-${id16}-01`],
    ['version of 3 digits', `000-${id32}-${id16}-01`],
    ['version of 4 digits', `0000-${id32}-${id16}-01`],
    ['version of 1 digit', `0-${id32}-${id16}-01`],
    ['version ff', `ff-${id32}-${id16}-01`],
    ['uppercase version', `0A-${id32}-${id16}-01`],
    ['version 00 with an extra field', `00-${id32}-${id16}-01-what-the-future-will-be-like`],
    ['version 00 with a trailing character', `00-${id32}-${id16}-01.`],
    ['future version with a field not after a dash', `cc-${id32}-${id16}-01.what-the-future-will-be-like`],
    ['future version shorter than 55 characters', `cc-${id32}-${id16}-1`],
    // lengths
    ['trace-id of 31 digits', `00-${id32.slice(1)}-${id16}-01`],
    ['trace-id of 33 digits', `00-${id32}a-${id16}-01`],
    ['parent-id of 15 digits', `00-${id32}-${id16.slice(1)}-01`],
    ['parent-id of 17 digits', `00-${id32}-${id16}a-01`],
    ['flags of 1 digit', `00-${id32}-${id16}-1`],
    ['flags of 3 digits', `00-${id32}-${id16}-001`],
    ['empty', ''],
    ['whitespace only', ' \t '],
    // case
    ['uppercase trace-id', `00-${id32.toUpperCase()}-${id16}-01`],
    ['uppercase parent-id', `00-${id32}-${id16.toUpperCase()}-01`],
    ['uppercase flags', `00-${id32}-${id16}-0A`],
    // zero ids
    ['all-zero trace-id', `00-${'0'.repeat(32)}-${id16}-01`],
    ['all-zero parent-id', `00-${id32}-${'0'.repeat(16)}-01`],
    // characters
    ['non-hex in trace-id', `00-.${id32.slice(1)}-${id16}-01`],
    ['non-hex letter in trace-id', `00-${id32.slice(0, 31)}g-${id16}-01`],
    ['non-hex in parent-id', `00-${id32}-${id16.slice(0, 15)}.-01`],
    ['non-hex in flags', `00-${id32}-${id16}-.0`],
    ['non-ASCII in trace-id', `00-${id32.slice(0, 31)}é-${id16}-01`],
    ['underscores instead of dashes', `00_${id32}_${id16}_01`],
    ['whitespace inside', `00- ${id32.slice(1)}-${id16}-01`],
    ['newline after the flags', `00-${id32}-${id16}-01\n`],
    // size
    ['future version over 512 characters', `cc-${id32}-${id16}-01-${'a'.repeat(600)}`],
    ['1 MB of garbage', 'a'.repeat(1_000_000)],
  ])('starts a new trace on a malformed traceparent: %s', (_, traceparent) => {
    expect(spanContextOf({ traceparent, tracestate: 'congo=t61rcWkgMzE' })).toBeUndefined();
  });

  it('starts a new trace when traceparent comes more than once', () => {
    const other = `00-${'1'.repeat(32)}-${id16}-01`;
    expect(spanContextOf({ traceparent: [TRACEPARENT, other] })).toBeUndefined();
    // What Node's IncomingMessage.headers makes of two traceparent lines.
    expect(spanContextOf({ traceparent: `${TRACEPARENT}, ${other}` })).toBeUndefined();
    expect(spanContextOf({ traceparent: [TRACEPARENT] })?.traceId).toBe(TRACE_ID);
  });

  it.each([
    ['a number', 42],
    ['null', null],
    ['an object', { toString: () => TRACEPARENT }],
    ['a Buffer', Buffer.from(TRACEPARENT)],
    ['an array holding a number', [42]],
    ['an empty array', []],
  ])('ignores a traceparent that is %s', (_, traceparent) => {
    expect(spanContextOf({ traceparent })).toBeUndefined();
  });

  it('returns the very context it was given when there is nothing to take', () => {
    const base = ROOT_CONTEXT.setValue(Symbol('marker'), 1);
    expect(traceContext.extract(base, {}, getter)).toBe(base);
    expect(traceContext.extract(base, { traceparent: 'garbage', tracestate: 'a=1' }, getter)).toBe(base);
  });
});

describe('W3CTraceContextPropagator.extract: tracestate', () => {
  it('keeps a valid list, with multi-tenant keys, whitespace and empty members, in order', () => {
    const traceState = traceStateOf(
      ' rojo=00f067aa0ba902b7 ,\t, ,congo@vendor=t61rcWkgMzE,  tenant1@sys=a value\t',
    );
    expect(traceState?.get('rojo')).toBe('00f067aa0ba902b7');
    expect(traceState?.get('congo@vendor')).toBe('t61rcWkgMzE');
    expect(traceState?.get('tenant1@sys')).toBe('a value');
    expect(traceState?.serialize()).toBe(
      'rojo=00f067aa0ba902b7,congo@vendor=t61rcWkgMzE,tenant1@sys=a value',
    );
  });

  it('combines repeated tracestate headers in order', () => {
    const traceState = traceStateOf(['foo=1,bar=2', 'rojo=1,congo=2', '', 'baz=3']);
    expect(traceState?.serialize()).toBe('foo=1,bar=2,rojo=1,congo=2,baz=3');
  });

  it('accepts every character the spec allows', () => {
    const key = 'abcdefghijklmnopqrstuvwxyz0123456789_-*/';
    let value = '';
    for (let code = 0x20; code <= 0x7e; code++)
      if (code !== 0x2c && code !== 0x3d) value += String.fromCharCode(code);
    expect(traceStateOf(`${key}=${value}`)?.get(key)).toBe(value);
    expect(traceStateOf(`${key}@a-z0-9_-*/=${value}`)?.get(`${key}@a-z0-9_-*/`)).toBe(value);
  });

  it.each([
    ['a simple key of 256 characters', 'z'.repeat(256), true],
    ['a simple key of 257 characters', 'z'.repeat(257), false],
    ['a tenant of 241 characters and a system of 14', `${'t'.repeat(241)}@${'v'.repeat(14)}`, true],
    ['a tenant of 242 characters', `${'t'.repeat(242)}@v`, false],
    ['a system of 15 characters', `t@${'v'.repeat(15)}`, false],
    ['a tenant starting with a digit', '1tenant@vendor', true],
  ])('applies the key length limits: %s', (_, key, valid) => {
    const traceState = traceStateOf(['foo=1', `${key}=1`]);
    expect(traceState?.get('foo')).toBe(valid ? '1' : undefined);
  });

  it('keeps 32 members and discards a list of 33', () => {
    const members = Array.from({ length: 33 }, (_, index) => `bar${index}=${index}`);
    expect(traceStateOf(members.slice(0, 32).join(','))?.get('bar31')).toBe('31');
    const traceState = traceStateOf([members.slice(0, 20).join(','), members.slice(20).join(',')]);
    expect(traceState).toBeUndefined();
  });

  it('does not count empty members against the 32', () => {
    const members = Array.from({ length: 32 }, (_, index) => `bar${index}=${index}`);
    expect(traceStateOf(`${members.join(', ,')},,,`)?.get('bar0')).toBe('0');
  });

  it.each([
    ['in one header', 'foo=1,foo=1'],
    ['with different values', 'foo=1,bar=2,foo=2'],
    ['across headers', ['foo=1', 'foo=2']],
  ])('discards the whole list on a repeated key (%s)', (_, tracestate) => {
    expect(traceStateOf(tracestate)).toBeUndefined();
  });

  it.each([
    ['uppercase', 'FOO=1'],
    ['a dot', 'foo.bar=1'],
    ['a space before =', 'foo =1'],
    ['a simple key starting with a digit', '1foo=1'],
    ['an empty key', '=1'],
    ['@ first', '@foo=1'],
    ['@ last', 'foo@=1'],
    ['two @ in a row', 'foo@@bar=1'],
    ['two @', 'foo@bar@baz=1'],
    ['a system starting with a digit', 'foo@1bar=1'],
    ['non-ASCII', 'föo=1'],
    ['no = at all', 'foo'],
  ])('discards the whole list on an invalid key: %s', (_, member) => {
    expect(traceStateOf(`bar=2,${member}`)).toBeUndefined();
  });

  it.each([
    ['a second =', 'foo=bar=baz'],
    ['an empty value', 'foo='],
    ['a tab inside', 'foo=a\tb'],
    ['a control character', 'foo=a\u0000b'],
    ['a newline', 'foo=a\nb'],
    ['non-ASCII', 'foo=é'],
    ['DEL', 'foo=a\u007fb'],
    ['257 characters', `foo=${'v'.repeat(257)}`],
  ])('discards the whole list on an invalid value: %s', (_, member) => {
    expect(traceStateOf(`bar=2,${member}`)).toBeUndefined();
  });

  it('accepts a value of 256 characters and a leading space in a value', () => {
    expect(traceStateOf(`foo=${'v'.repeat(256)}`)?.get('foo')).toHaveLength(256);
    expect(traceStateOf('foo= v')?.get('foo')).toBe(' v');
  });

  it('keeps the traceparent when the tracestate is discarded or empty', () => {
    expect(spanContextOf({ traceparent: TRACEPARENT, tracestate: 'FOO=1' })).toMatchObject({
      traceId: TRACE_ID,
    });
    const emptied = spanContextOf({ traceparent: TRACEPARENT, tracestate: ' , ,' });
    expect(emptied?.traceId).toBe(TRACE_ID);
    expect(emptied?.traceState).toBeUndefined();
  });

  it('truncates past 512 characters as the spec says: members over 128 characters first', () => {
    const small = Array.from({ length: 10 }, (_, index) => `s${index}=${'v'.repeat(30)}`);
    const big = `big=${'x'.repeat(200)}`;
    const traceState = traceStateOf(['a=1', big, ...small].join(','));
    expect(traceState?.get('big')).toBeUndefined();
    expect(traceState?.serialize()).toBe(['a=1', ...small].join(','));
  });

  it('truncates past 512 characters as the spec says: then from the right', () => {
    const members = Array.from(
      { length: 20 },
      (_, index) => `s${String(index).padStart(2, '0')}=${'v'.repeat(29)}`,
    );
    const serialized = traceStateOf(members.join(','))?.serialize();
    expect(serialized).toBe(members.slice(0, 15).join(','));
    expect(serialized?.length).toBeLessThanOrEqual(512);
  });

  it('refuses an oversized header without parsing it, even one of valid-looking parts', () => {
    expect(traceStateOf(`foo=1${','.repeat(40_000)}`)).toBeUndefined();
    expect(traceStateOf(Array.from({ length: 10_000 }, () => ' , '))).toBeUndefined();
  });

  it.each([
    ['a number', 7],
    ['an array holding a number', ['foo=1', 7]],
  ])('ignores a tracestate that is %s', (_, tracestate) => {
    const spanContext = spanContextOf({ traceparent: TRACEPARENT, tracestate });
    expect(spanContext?.traceId).toBe(TRACE_ID);
    expect(spanContext?.traceState).toBeUndefined();
  });

  it('gives a TraceState whose mutations follow the spec', () => {
    const traceState = traceStateOf('rojo=1,congo=2')!;
    expect(traceState.set('congo', '3').serialize()).toBe('congo=3,rojo=1');
    expect(traceState.set('new', 'x').serialize()).toBe('new=x,rojo=1,congo=2');
    expect(traceState.unset('rojo').serialize()).toBe('congo=2');
    expect(traceState.unset('absent')).toBe(traceState);
    expect(traceState.set('BAD', 'x')).toBe(traceState);
    expect(traceState.set('ok', 'bad,value')).toBe(traceState);
    expect(traceState.set('ok', 'trailing ')).toBe(traceState);
    expect(traceState.serialize()).toBe('rojo=1,congo=2');

    const full = traceStateOf(Array.from({ length: 32 }, (_, index) => `k${index}=${index}`).join(','))!;
    const added = full.set('newest', 'n');
    expect(added.get('newest')).toBe('n');
    expect(added.get('k31')).toBeUndefined();
    expect(added.get('k30')).toBe('30');
  });
});

describe('W3CTraceContextPropagator.inject', () => {
  it('writes traceparent and tracestate for a valid span context', () => {
    const traceState = traceStateOf('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    const carrier: Record<string, string> = {};
    traceContext.inject(
      contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED, traceState }),
      carrier,
      setter,
    );
    expect(carrier).toEqual({
      traceparent: TRACEPARENT,
      tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
    });
  });

  it.each([
    ['an all-zero trace id', { traceId: '0'.repeat(32), spanId: SPAN_ID, traceFlags: 1 }],
    ['an uppercase span id', { traceId: TRACE_ID, spanId: SPAN_ID.toUpperCase(), traceFlags: 1 }],
    ['a short trace id', { traceId: 'abc', spanId: SPAN_ID, traceFlags: 1 }],
  ])('writes nothing for %s', (_, spanContext) => {
    const carrier: Record<string, string> = {};
    traceContext.inject(contextWith(spanContext), carrier, setter);
    expect(carrier).toEqual({});
  });

  it('writes nothing without a span context or while tracing is suppressed', () => {
    const carrier: Record<string, string> = {};
    traceContext.inject(ROOT_CONTEXT, carrier, setter);
    traceContext.inject(
      suppressTracing(contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 })),
      carrier,
      setter,
    );
    expect(carrier).toEqual({});
  });

  it('re-validates a trace state it did not build and drops it when unsafe', () => {
    const foreign = (serialized: string): TraceState => ({
      set: () => foreign(serialized),
      unset: () => foreign(serialized),
      get: () => undefined,
      serialize: () => serialized,
    });
    const injected = (traceState: TraceState) => {
      const carrier: Record<string, string> = {};
      traceContext.inject(
        contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 0, traceState }),
        carrier,
        setter,
      );
      return carrier;
    };
    expect(injected(foreign('a=1\r\nset-cookie: x=y')).tracestate).toBeUndefined();
    expect(injected(foreign('a=1 , b=2'))).toEqual({
      traceparent: `00-${TRACE_ID}-${SPAN_ID}-00`,
      tracestate: 'a=1,b=2',
    });
  });

  it('reports a failing setter to the error sink instead of throwing', () => {
    const reported: string[] = [];
    const sink = createInternalErrorSink({ intervalMs: 0, writer: ({ kind }) => reported.push(kind) });
    const throwing = {
      set: () => {
        throw new Error('read-only carrier');
      },
    };
    const ctx = contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
    expect(() => new W3CTraceContextPropagator(sink).inject(ctx, {}, throwing)).not.toThrow();
    expect(reported).toEqual(['propagation_inject']);
  });

  it('reports a failing getter to the error sink and returns the context unchanged', () => {
    const sink = createInternalErrorSink({ intervalMs: 0, writer: () => {} });
    const throwing: TextMapGetter = {
      keys: () => [],
      get: () => {
        throw new Error('getter exploded');
      },
    };
    expect(new W3CTraceContextPropagator(sink).extract(ROOT_CONTEXT, {}, throwing)).toBe(ROOT_CONTEXT);
    expect(new W3CBaggagePropagator(sink).extract(ROOT_CONTEXT, {}, throwing)).toBe(ROOT_CONTEXT);
    expect(sink.counts().get('propagation_extract')).toBe(2);
  });
});

describe('W3CBaggagePropagator.extract', () => {
  it('reads the spec examples: properties, whitespace and percent-encoding', () => {
    expect(baggageOf('userId=alice,serverNode=DF%2028,isProduction=false')).toEqual({
      userId: 'alice',
      serverNode: 'DF 28',
      isProduction: 'false',
    });
    expect(baggageOf(['userId =   alice', 'serverNode = DF%2028, isProduction = false'])).toEqual({
      userId: 'alice',
      serverNode: 'DF 28',
      isProduction: 'false',
    });

    const ctx = baggagePropagator.extract(
      ROOT_CONTEXT,
      { baggage: 'key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue' },
      getter,
    );
    const baggage = propagation.getBaggage(ctx)!;
    expect(baggage.getEntry('key1')?.value).toBe('value1');
    expect(baggage.getEntry('key1')?.metadata?.toString()).toBe('property1;property2');
    expect(baggage.getEntry('key2')).toEqual({ value: 'value2' });
    expect(baggage.getEntry('key3')?.metadata?.toString()).toBe('propertyKey=propertyValue');
  });

  it('decodes UTF-8, keeps = inside values and replaces bytes that are not UTF-8', () => {
    expect(baggageOf('check=%E2%9C%93,lower=%e2%9c%93,eq=a=b,bad=%FF%FE,bom=%EF%BB%BFx,empty=')).toEqual({
      check: '✓',
      lower: '✓',
      eq: 'a=b',
      bad: '\uFFFD\uFFFD',
      bom: '\uFEFFx',
      empty: '',
    });
  });

  it.each([
    ['%zz', 'a=%zz'],
    ['a lone %', 'a=50%'],
    ['% and one digit', 'a=%4'],
    ['% and a non-ASCII digit', 'a=%4é'],
  ])('drops a member with invalid percent-encoding (%s) and keeps the rest', (_, member) => {
    expect(baggageOf(`before=1,${member},after=2`)).toEqual({ before: '1', after: '2' });
    expect(baggageOf(`before=1,${member}`)).toEqual({ before: '1' });
  });

  it.each([
    ['no =', 'novalue'],
    ['no key', '=nokey'],
    ['a space in the key', 'ke y=v'],
    ['a space in the value', 'k=v v'],
    ['a quote in the value', 'k="quoted"'],
    ['a backslash in the value', 'k=back\\slash'],
    ['non-ASCII in the value', 'k=é'],
    ['non-ASCII in the key', 'clé=v'],
    ['a control character', 'k=a\u0001b'],
    ['a newline', 'k=a\nb'],
    ['an empty property', 'k=v;'],
    ['a property without a key', 'k=v;=p'],
    ['a property with a bad value', 'k=v;p=a b'],
    ['a property with a bad key', 'k=v;p p'],
  ])('drops a malformed member (%s) and keeps the rest', (_, member) => {
    expect(baggageOf(`before=1,${member},after=2`)).toEqual({ before: '1', after: '2' });
  });

  it('skips empty members and keeps __proto__ an ordinary key', () => {
    expect(baggageOf(' , ,a=1,,\t,__proto__=x')).toEqual({ a: '1', ['__proto__']: 'x' });
  });

  it('keeps the first 64 members and drops the rest', () => {
    const header = Array.from({ length: 70 }, (_, index) => `k${index}=v${index}`).join(',');
    const baggage = baggageOf(header)!;
    expect(Object.keys(baggage)).toHaveLength(64);
    expect(baggage.k63).toBe('v63');
    expect(baggage.k64).toBeUndefined();
  });

  it('keeps the members within the first 8192 bytes and drops the rest', () => {
    // Each member is 1000 bytes: the 8th ends at byte 8007, the 9th would end at 9008.
    const members = Array.from(
      { length: 12 },
      (_, index) => `k${index}=${'v'.repeat(997 - String(index).length)}`,
    );
    const baggage = baggageOf(members.join(','))!;
    expect(Object.keys(baggage)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7']);
    expect(baggageOf([members.slice(0, 6).join(','), members.slice(6).join(',')])).toEqual(baggage);
  });

  it.each([
    ['a number', 7],
    ['an array holding an object', [{}]],
    ['nothing valid', 'garbage,;;;,=='],
  ])('leaves the context without baggage for %s', (_, header) => {
    expect(baggageOf(header)).toBeUndefined();
  });
});

describe('W3CBaggagePropagator.inject', () => {
  const injected = (entries: Record<string, BaggageEntry>): string | undefined => {
    const carrier: Record<string, string> = {};
    baggagePropagator.inject(
      propagation.setBaggage(ROOT_CONTEXT, propagation.createBaggage(entries)),
      carrier,
      setter,
    );
    return carrier.baggage;
  };

  it('percent-encodes what is not a baggage octet, and % itself', () => {
    expect(
      injected({
        plain: { value: 'alice' },
        space: { value: 'DF 28' },
        percent: { value: '100%' },
        separators: { value: 'a,b;c"d\\e' },
        unicode: { value: '✓' },
        loneSurrogate: { value: '\uD800' },
      }),
    ).toBe(
      'plain=alice,space=DF%2028,percent=100%25,separators=a%2Cb%3Bc%22d%5Ce,unicode=%E2%9C%93,loneSurrogate=%EF%BF%BD',
    );
  });

  it('writes valid metadata and drops metadata that could break the header', () => {
    expect(
      injected({
        a: { value: '1', metadata: baggageEntryMetadataFromString('p1;p2=v2') },
        b: { value: '2', metadata: baggageEntryMetadataFromString('x\r\nset-cookie: y') },
      }),
    ).toBe('a=1;p1;p2=v2,b=2');
  });

  it('skips keys that are not tokens', () => {
    expect(injected({ 'bad key': { value: '1' }, ключ: { value: '2' }, good: { value: '3' } })).toBe(
      'good=3',
    );
  });

  it('writes at most 64 members and 8192 bytes, leaving out whole members', () => {
    const many = Object.fromEntries(Array.from({ length: 70 }, (_, index) => [`k${index}`, { value: 'v' }]));
    expect(injected(many)?.split(',')).toHaveLength(64);

    const big = Object.fromEntries(
      Array.from({ length: 9 }, (_, index) => [`k${index}`, { value: 'v'.repeat(997) }]),
    );
    const header = injected({ ...big, small: { value: 's' } })!;
    expect(header.length).toBeLessThanOrEqual(8192);
    expect(header.split(',').map((member) => member.split('=')[0])).toEqual([
      'k0',
      'k1',
      'k2',
      'k3',
      'k4',
      'k5',
      'k6',
      'k7',
      'small',
    ]);
  });

  it('writes nothing for empty baggage', () => {
    expect(injected({})).toBeUndefined();
    expect(injected({ 'bad key': { value: '1' } })).toBeUndefined();
  });
});

describe('createPropagator', () => {
  it('round-trips trace context and baggage through inject and extract', () => {
    const propagator = createPropagator();
    expect(propagator.fields().sort()).toEqual(['baggage', 'traceparent', 'tracestate']);
    const traceState = traceStateOf('congo@vendor=t61rcWkgMzE');
    const values = { plain: 'alice', awkward: 'a b,c;d=e%f "g" \\h ✓' };
    const sent = contextWith(
      { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED, traceState },
      {
        plain: { value: values.plain },
        awkward: { value: values.awkward, metadata: baggageEntryMetadataFromString('ttl=30') },
      },
    );
    const carrier: Record<string, string> = {};
    propagator.inject(sent, carrier, setter);
    for (const value of Object.values(carrier)) expect(value).toMatch(/^[\x20-\x7e]*$/);

    const received = propagator.extract(ROOT_CONTEXT, carrier, getter);
    expect(trace.getSpanContext(received)).toMatchObject({
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      traceFlags: 1,
    });
    expect(trace.getSpanContext(received)?.traceState?.serialize()).toBe('congo@vendor=t61rcWkgMzE');
    const baggage = propagation.getBaggage(received)!;
    expect(baggage.getEntry('plain')?.value).toBe(values.plain);
    expect(baggage.getEntry('awkward')?.value).toBe(values.awkward);
    expect(baggage.getEntry('awkward')?.metadata?.toString()).toBe('ttl=30');
  });

  it('never throws and never emits an unsafe character, whatever the headers hold', () => {
    const alphabet = [
      '0',
      'a',
      'f',
      'F',
      '-',
      ',',
      '=',
      ';',
      '%',
      ' ',
      '\t',
      '@',
      '\n',
      '\u0000',
      'é',
      '\uD800',
      'z',
    ];
    const random = pseudoRandom(20_260_601);
    const text = (maxLength: number) => {
      let result = '';
      const length = Math.floor(random() * maxLength);
      for (let index = 0; index < length; index++) result += alphabet[Math.floor(random() * alphabet.length)];
      return result;
    };
    const propagator = createPropagator();
    for (let round = 0; round < 2000; round++) {
      const mutated = [...TRACEPARENT];
      mutated[Math.floor(random() * mutated.length)] = alphabet[Math.floor(random() * alphabet.length)]!;
      const carrier = { traceparent: mutated.join(''), tracestate: text(60), baggage: text(60) };
      const ctx = propagator.extract(ROOT_CONTEXT, carrier, getter);
      const out: Record<string, string> = {};
      propagator.inject(ctx, out, setter);
      for (const value of Object.values(out)) expect(value).toMatch(/^[\x20-\x7e]*$/);
    }
  });
});

describe('extractContext / injectContext', () => {
  it('carries trace context, baggage and the request id through a job payload', () => {
    const state = createRequestState('req-42');
    const ctx = setRequestState(
      contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 }, { tenant: { value: 'acme' } }),
      state,
    );
    const payload: Record<string, string> = {};
    injectContext(payload, ctx);
    expect(payload).toEqual({ traceparent: TRACEPARENT, baggage: 'tenant=acme', 'x-request-id': 'req-42' });

    const restored = extractContext(JSON.parse(JSON.stringify(payload)), ROOT_CONTEXT);
    expect(trace.getSpanContext(restored)?.traceId).toBe(TRACE_ID);
    expect(propagation.getBaggage(restored)?.getEntry('tenant')?.value).toBe('acme');
  });

  it('never throws into the caller on a carrier it cannot write (frozen, a throwing setter)', () => {
    const ctx = setRequestState(ROOT_CONTEXT, createRequestState('req-42'));
    const frozen = Object.freeze({}) as Record<string, string>;
    const hostile = new Proxy({} as Record<string, string>, {
      set() {
        throw new Error('set');
      },
    });
    expect(() => injectContext(frozen, ctx)).not.toThrow();
    expect(() => injectContext(hostile, ctx)).not.toThrow();
  });

  it('does not write a request id that is not safe to send', () => {
    const payload: Record<string, string> = {};
    injectContext(payload, setRequestState(ROOT_CONTEXT, createRequestState('bad\r\nid')));
    expect(payload).toEqual({});
  });

  it('treats a missing job payload as an empty carrier, not as a failure', () => {
    const warnings: unknown[] = [];
    const collect = (...args: unknown[]) => warnings.push(args);
    diag.setLogger(
      { error: collect, warn: collect, info: collect, debug: collect, verbose: collect },
      DiagLogLevel.WARN,
    );
    try {
      const missing = null as unknown as Record<string, string>;
      expect(extractContext(missing, ROOT_CONTEXT)).toBe(ROOT_CONTEXT);
      expect(extractContext('traceparent' as unknown as Record<string, unknown>, ROOT_CONTEXT)).toBe(
        ROOT_CONTEXT,
      );
      const ctx = setRequestState(
        contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 }),
        createRequestState('r1'),
      );
      expect(() => injectContext(missing, ctx)).not.toThrow();
    } finally {
      diag.disable();
    }
    expect(warnings).toEqual([]);
  });

  it("reads Node's incoming headers, including repeated and differently cased ones", async () => {
    const seen: Array<{ traceId: string | undefined; traceState: string | undefined; baggage: unknown }> = [];
    const server = createServer((req, res) => {
      const ctx = extractContext(req.headers, ROOT_CONTEXT);
      const spanContext = trace.getSpanContext(ctx);
      seen.push({
        traceId: spanContext?.traceId,
        traceState: spanContext?.traceState?.serialize(),
        baggage: propagation
          .getBaggage(ctx)
          ?.getAllEntries()
          .map(([key, entry]) => [key, entry.value]),
      });
      res.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const send = async (headers: Record<string, string | string[]>) => {
      const req = request({ host: '127.0.0.1', port, headers });
      req.end();
      const [res] = await once(req, 'response');
      res.resume();
      await once(res, 'end');
    };
    try {
      await send({ TraceParent: TRACEPARENT, tracestate: ['a=1', 'b=2'], baggage: ['k1=v1', 'k2=v%202'] });
      await send({ traceparent: [TRACEPARENT, `00-${'1'.repeat(32)}-${SPAN_ID}-01`], tracestate: 'a=1' });
    } finally {
      server.close();
    }
    expect(seen).toEqual([
      {
        traceId: TRACE_ID,
        traceState: 'a=1,b=2',
        baggage: [
          ['k1', 'v1'],
          ['k2', 'v 2'],
        ],
      },
      { traceId: undefined, traceState: undefined, baggage: undefined },
    ]);
  });
});

describe('sanitizeRequestId', () => {
  it.each([
    ['a UUID', '3f1c2a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60'],
    ['every allowed punctuation', 'a.b_c:d/f+g=h-i'],
    ['128 characters', 'r'.repeat(128)],
    ['one character', 'x'],
  ])('accepts %s', (_, value) => {
    expect(sanitizeRequestId(value)).toBe(value);
    expect(sanitizeRequestId([value])).toBe(value);
  });

  it.each([
    ['empty', ''],
    ['129 characters', 'r'.repeat(129)],
    ['a space', 'abc def'],
    ['a newline', 'abc\ndef'],
    ['CRLF and a forged log line', 'abc\r\n{"level":"error"}'],
    ['a NUL', 'abc\u0000'],
    ['an escape sequence', '\u001b[31mred'],
    ['a double quote', 'abc"def'],
    ['a single quote', "abc'def"],
    ['a backslash', 'abc\\def'],
    ['a comma', 'a,b'],
    // An email as the id would be copied into every log record and job of the request.
    ['an @', 'alice@example.com'],
    ['non-ASCII', 'réquest'],
    ['an emoji', 'id-😀'],
    ['a lookalike letter', 'аbc'],
    ['two values', ['a', 'b']],
    ['no values', []],
    ['a number', 42],
    ['null', null],
    ['undefined', undefined],
    ['an object', { toString: () => 'abc' }],
  ])('refuses %s', (_, value) => {
    expect(sanitizeRequestId(value)).toBeUndefined();
  });
});

describe('generateRequestId', () => {
  it('generates distinct UUIDs that pass the sanitizer', () => {
    const first = generateRequestId();
    const second = generateRequestId();
    expect(first).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(second).not.toBe(first);
    expect(sanitizeRequestId(first)).toBe(first);
  });
});
