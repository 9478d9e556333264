/**
 * OTLP/protobuf encoding of finished spans (an `ExportTraceServiceRequest`), written for the one
 * job the exporter does on every span: it is about seven times cheaper than the upstream serializer
 * (see docs/benchmarks.md). The differences: one pass instead of a size pass plus a write pass,
 * attribute keys and the resource and scope headers encoded once and copied, ids decoded from hex
 * without an intermediate buffer, and nested lengths patched in place. Field numbers and the
 * encoding of every value type follow opentelemetry-proto and the upstream serializer.
 */
import type { Attributes, HrTime, Link, SpanContext } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import type { SpanQueue } from './span-processor.ts';

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

const SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE = 0x100;
const SPAN_FLAGS_CONTEXT_IS_REMOTE = 0x200;
const TWO_POW_32 = 4294967296;
const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;
/** A string of at most this many UTF-16 units encodes to at most 127 bytes: a one-byte length. */
const SHORT_STRING = 42;
/** Attribute keys are a small, fixed set in practice; the cap only guards against dynamic keys. */
const MAX_CACHED_KEYS = 2048;
/** A group's first buffer: a few server spans; it doubles as spans arrive. */
const INITIAL_GROUP_BYTES = 8192;

/** The byte two hex digits stand for, indexed by their two 7-bit character codes. */
const HEX_PAIRS = new Uint8Array(128 * 128);
{
  const digits = '0123456789abcdef';
  const values = new Map<number, number>();
  for (let digit = 0; digit < 16; digit++) {
    values.set(digits.charCodeAt(digit), digit);
    values.set(digits.toUpperCase().charCodeAt(digit), digit);
  }
  for (const [high, highValue] of values) {
    for (const [low, lowValue] of values) HEX_PAIRS[(high << 7) | low] = (highValue << 4) | lowValue;
  }
}

function tag(field: number, wireType: number): number {
  return (field << 3) | wireType;
}

class ProtobufWriter {
  buffer: Buffer;
  pos = 0;

  constructor(capacity: number) {
    this.buffer = Buffer.allocUnsafe(capacity);
  }

  reserve(bytes: number): void {
    if (this.pos + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.pos + bytes));
    this.buffer.copy(grown, 0, 0, this.pos);
    this.buffer = grown;
  }

  /** Tags and small varints below 128: the common case, one byte. */
  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.pos++] = value;
  }

  varint(value: number): void {
    this.reserve(5);
    const buffer = this.buffer;
    let rest = value >>> 0;
    while (rest > 127) {
      buffer[this.pos++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    buffer[this.pos++] = rest;
  }

  /** A signed 64-bit integer as protobuf's int64 varint (negative numbers take ten bytes). */
  int64(value: number): void {
    if (value >= 0 && value < TWO_POW_32) {
      this.varint(value);
      return;
    }
    const magnitude = Math.abs(value);
    let low = magnitude >>> 0;
    let high = Math.floor(magnitude / TWO_POW_32) >>> 0;
    if (value < 0) {
      low = (~low + 1) >>> 0;
      high = (~high + (low === 0 ? 1 : 0)) >>> 0;
    }
    this.reserve(10);
    const buffer = this.buffer;
    while (high > 0 || low > 127) {
      buffer[this.pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buffer[this.pos++] = low;
  }

  fixed32(value: number): void {
    this.reserve(4);
    this.uint32(value);
  }

  /** Four little-endian bytes; the caller reserved room. */
  uint32(value: number): void {
    const buffer = this.buffer;
    buffer[this.pos] = value & 0xff;
    buffer[this.pos + 1] = (value >>> 8) & 0xff;
    buffer[this.pos + 2] = (value >>> 16) & 0xff;
    buffer[this.pos + 3] = (value >>> 24) & 0xff;
    this.pos += 4;
  }

  double(value: number): void {
    this.reserve(8);
    this.buffer.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  /** HrTime `[seconds, nanoseconds]` as fixed64 nanoseconds, exactly, without BigInt. */
  hrTime(time: HrTime): void {
    const seconds = time[0];
    const secondsHigh = Math.floor(seconds / 65536);
    const nanosHigh = secondsHigh * 1e9; // × 2^16 below; exact, below 2^53
    const lowPart = (nanosHigh % 65536) * 65536 + (seconds - secondsHigh * 65536) * 1e9 + time[1];
    const low = lowPart % TWO_POW_32;
    const high = Math.floor(nanosHigh / 65536) + Math.floor(lowPart / TWO_POW_32);
    this.reserve(8);
    this.uint32(low);
    this.uint32(high);
  }

  /** A string with its length prefix. */
  string(value: string): void {
    const length = value.length;
    if (length <= SHORT_STRING) {
      this.reserve(1 + 3 * length);
      const buffer = this.buffer;
      const start = this.pos;
      let at = start + 1;
      for (let i = 0; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) {
          at = start + 1 + buffer.write(value, start + 1, 'utf8');
          break;
        }
        buffer[at++] = code;
      }
      buffer[start] = at - start - 1;
      this.pos = at;
      return;
    }
    const bytes = Buffer.byteLength(value, 'utf8');
    this.varint(bytes);
    this.reserve(bytes);
    this.pos += this.buffer.write(value, this.pos, 'utf8');
  }

  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.raw(value);
  }

  raw(value: Uint8Array): void {
    const length = value.length;
    this.reserve(length);
    if (length > 16) {
      this.buffer.set(value, this.pos);
      this.pos += length;
      return;
    }
    // Short copies (attribute keys) are cheaper in a loop than through the native call.
    const buffer = this.buffer;
    let at = this.pos;
    for (let i = 0; i < length; i++) buffer[at++] = value[i]!;
    this.pos = at;
  }

  /** An id given as hex (trace and span ids), with its length prefix. */
  hexId(hex: string): void {
    const length = hex.length >>> 1;
    this.reserve(1 + length);
    const buffer = this.buffer;
    let at = this.pos;
    buffer[at++] = length;
    for (let i = 0; i < 2 * length; i += 2) {
      buffer[at++] = HEX_PAIRS[((hex.charCodeAt(i) & 0x7f) << 7) | (hex.charCodeAt(i + 1) & 0x7f)]!;
    }
    this.pos = at;
  }

  /** Starts a length-delimited field: reserves one byte for its length. */
  begin(): number {
    this.reserve(1);
    return this.pos++;
  }

  /** Ends the field `begin` started, widening the length prefix (moving the body) past 127 bytes. */
  end(start: number): void {
    const length = this.pos - start - 1;
    if (length < 128) {
      this.buffer[start] = length;
      return;
    }
    const prefix = length < 1 << 14 ? 2 : length < 1 << 21 ? 3 : length < 1 << 28 ? 4 : 5;
    this.reserve(prefix - 1);
    this.buffer.copyWithin(start + prefix, start + 1, this.pos);
    this.pos += prefix - 1;
    let rest = length;
    let at = start;
    while (rest > 127) {
      this.buffer[at++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    this.buffer[at] = rest;
  }

  finish(): Uint8Array {
    return this.buffer.subarray(0, this.pos);
  }
}

/** `KeyValue.key` (tag, length, bytes). */
function encodeKey(key: string): Uint8Array {
  const scratch = new ProtobufWriter(8 + 3 * key.length);
  scratch.byte(tag(1, WIRE_LENGTH_DELIMITED));
  scratch.string(key);
  return Uint8Array.prototype.slice.call(scratch.finish());
}

/** A key of any attribute list (resource, scope, event, link), encoded once while the cache has room. */
function writeKey(writer: ProtobufWriter, key: string): void {
  writer.raw(attributeKey(key)?.key ?? encodeKey(key));
}

function writeAnyValue(writer: ProtobufWriter, value: unknown): void {
  switch (typeof value) {
    case 'string':
      writer.byte(tag(1, WIRE_LENGTH_DELIMITED));
      writer.string(value);
      return;
    case 'boolean':
      writer.byte(tag(2, WIRE_VARINT));
      writer.byte(value ? 1 : 0);
      return;
    case 'number':
      if (Number.isInteger(value) && value >= MIN_INT64 && value < MAX_INT64) {
        writer.byte(tag(3, WIRE_VARINT));
        writer.int64(value);
      } else {
        writer.byte(tag(4, WIRE_FIXED64));
        writer.double(value);
      }
      return;
    case 'object': {
      if (value === null) return;
      if (value instanceof Uint8Array) {
        writer.byte(tag(7, WIRE_LENGTH_DELIMITED));
        writer.bytes(value);
        return;
      }
      if (Array.isArray(value)) {
        writer.byte(tag(5, WIRE_LENGTH_DELIMITED));
        const array = writer.begin();
        for (const item of value) {
          writer.byte(tag(1, WIRE_LENGTH_DELIMITED));
          const element = writer.begin();
          writeAnyValue(writer, item);
          writer.end(element);
        }
        writer.end(array);
        return;
      }
      writer.byte(tag(6, WIRE_LENGTH_DELIMITED));
      const list = writer.begin();
      writeAttributes(writer, value as Attributes, 1);
      writer.end(list);
      return;
    }
    default:
      return;
  }
}

/** One `KeyValue` as field `fieldTag` of the enclosing message. */
function writeKeyValue(writer: ProtobufWriter, fieldTag: number, key: string, value: unknown): void {
  writer.byte(fieldTag);
  const keyValue = writer.begin();
  writeKey(writer, key);
  writeValueField(writer, value);
  writer.end(keyValue);
}

/** `writeKeyValue` with the key already encoded. */
function writeEncodedKeyValue(
  writer: ProtobufWriter,
  fieldTag: number,
  key: Uint8Array,
  value: unknown,
): void {
  writer.byte(fieldTag);
  const keyValue = writer.begin();
  writer.raw(key);
  writeValueField(writer, value);
  writer.end(keyValue);
}

/** `KeyValue.value`. */
function writeValueField(writer: ProtobufWriter, value: unknown): void {
  writer.byte(tag(2, WIRE_LENGTH_DELIMITED));
  const anyValue = writer.begin();
  writeAnyValue(writer, value);
  writer.end(anyValue);
}

function writeAttributes(writer: ProtobufWriter, attributes: Attributes, field: number): void {
  const fieldTag = tag(field, WIRE_LENGTH_DELIMITED);
  for (const key in attributes) {
    if (Object.hasOwn(attributes, key)) writeKeyValue(writer, fieldTag, key, attributes[key]);
  }
}

/**
 * What is kept of one attribute key: its encoded `KeyValue.key`, and (for span attributes) the
 * whole `KeyValue` field for each of its recent values, while that pays.
 */
class AttributeKey {
  readonly key: Uint8Array;
  /** Encoded fields by value; undefined while the key is not worth it (its values keep changing). */
  byValue: Map<unknown, Uint8Array> | undefined = new Map();
  /** Bytes held in `byValue`. */
  bytes = 0;
  hits = 0;
  misses = 0;
  /** The miss count at which a key that was given up on is tried again. */
  retryAt = 0;

  constructor(key: Uint8Array) {
    this.key = key;
  }
}

/** Strings longer than this are encoded afresh each time: comparing them costs about what encoding does. */
const MAX_REMEMBERED_STRING = 256;
/** Values kept per key: a route, a status or a queue name takes a few; a job id or a raw path, all. */
const MAX_VALUES_PER_KEY = 32;
/** All keys' kept fields together stay below this, whatever attributes an application sets. */
const MAX_KEPT_BYTES = 1 << 20;
let keptBytes = 0;
const attributeKeys = new Map<string, AttributeKey>();

function rememberable(value: unknown): boolean {
  const type = typeof value;
  return (
    type === 'number' ||
    type === 'boolean' ||
    (type === 'string' && (value as string).length <= MAX_REMEMBERED_STRING)
  );
}

function attributeKey(key: string): AttributeKey | undefined {
  let found = attributeKeys.get(key);
  if (found === undefined && attributeKeys.size < MAX_CACHED_KEYS) {
    found = new AttributeKey(encodeKey(key));
    attributeKeys.set(key, found);
  }
  return found;
}

/**
 * A span's attributes. Most values repeat from one span to the next (method, route, host, status,
 * queue, operation): each key keeps the encoded field of its recent values and copies it when a
 * value comes again. A key whose values keep changing (a raw path, a job id) is given up on, so it
 * costs no copy it would never reuse, and tried again after twice as many misses as it had.
 */
function writeSpanAttributes(writer: ProtobufWriter, attributes: Attributes): void {
  const fieldTag = tag(9, WIRE_LENGTH_DELIMITED);
  const names = Object.keys(attributes);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const value = attributes[name];
    const key = attributeKey(name);
    if (key === undefined) {
      writeKeyValue(writer, fieldTag, name, value);
      continue;
    }
    const byValue = key.byValue;
    const encoded = byValue?.get(value);
    if (encoded !== undefined) {
      key.hits++;
      writer.raw(encoded);
      continue;
    }
    const start = writer.pos;
    writeEncodedKeyValue(writer, fieldTag, key.key, value);
    key.misses++;
    if (byValue === undefined) {
      if (key.misses >= key.retryAt) {
        key.byValue = new Map();
        key.hits = 0;
        key.misses = 0;
      }
    } else if (byValue.size < MAX_VALUES_PER_KEY) {
      const length = writer.pos - start;
      if (rememberable(value) && keptBytes + length <= MAX_KEPT_BYTES) {
        byValue.set(value, Uint8Array.prototype.slice.call(writer.buffer, start, writer.pos));
        key.bytes += length;
        keptBytes += length;
      }
    } else if (key.misses > key.hits) {
      key.byValue = undefined;
      keptBytes -= key.bytes;
      key.bytes = 0;
      key.retryAt = 2 * Math.max(key.misses, MAX_VALUES_PER_KEY);
    }
  }
}

function spanFlags(traceFlags: number, isRemote: boolean | undefined): number {
  return (
    (traceFlags & 0xff) | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE | (isRemote ? SPAN_FLAGS_CONTEXT_IS_REMOTE : 0)
  );
}

function writeCount(writer: ProtobufWriter, field: number, count: number | undefined): void {
  if (!count) return;
  writer.byte(tag(field, WIRE_VARINT));
  writer.varint(count);
}

function writeEvent(writer: ProtobufWriter, event: TimedEvent): void {
  writer.byte(tag(11, WIRE_LENGTH_DELIMITED));
  const start = writer.begin();
  writer.byte(tag(1, WIRE_FIXED64));
  writer.hrTime(event.time);
  writer.byte(tag(2, WIRE_LENGTH_DELIMITED));
  writer.string(event.name);
  if (event.attributes) writeAttributes(writer, event.attributes, 3);
  writeCount(writer, 4, event.droppedAttributesCount);
  writer.end(start);
}

function writeLink(writer: ProtobufWriter, link: Link): void {
  writer.byte(tag(13, WIRE_LENGTH_DELIMITED));
  const start = writer.begin();
  const linked: SpanContext = link.context;
  writer.byte(tag(1, WIRE_LENGTH_DELIMITED));
  writer.hexId(linked.traceId);
  writer.byte(tag(2, WIRE_LENGTH_DELIMITED));
  writer.hexId(linked.spanId);
  const traceState = linked.traceState?.serialize();
  if (traceState) {
    writer.byte(tag(3, WIRE_LENGTH_DELIMITED));
    writer.string(traceState);
  }
  if (link.attributes) writeAttributes(writer, link.attributes, 4);
  writeCount(writer, 5, link.droppedAttributesCount);
  writer.byte(tag(6, WIRE_FIXED32));
  writer.fixed32(spanFlags(linked.traceFlags, linked.isRemote));
  writer.end(start);
}

function writeSpan(writer: ProtobufWriter, span: ReadableSpan): void {
  writer.byte(tag(2, WIRE_LENGTH_DELIMITED));
  const start = writer.begin();
  const spanContext = span.spanContext();
  writer.byte(tag(1, WIRE_LENGTH_DELIMITED));
  writer.hexId(spanContext.traceId);
  writer.byte(tag(2, WIRE_LENGTH_DELIMITED));
  writer.hexId(spanContext.spanId);
  const traceState = spanContext.traceState?.serialize();
  if (traceState) {
    writer.byte(tag(3, WIRE_LENGTH_DELIMITED));
    writer.string(traceState);
  }
  const parent = span.parentSpanContext;
  if (parent?.spanId) {
    writer.byte(tag(4, WIRE_LENGTH_DELIMITED));
    writer.hexId(parent.spanId);
  }
  writer.byte(tag(5, WIRE_LENGTH_DELIMITED));
  writer.string(span.name);
  // OTLP's SpanKind counts from SPAN_KIND_UNSPECIFIED = 0; the API's from INTERNAL = 0.
  writer.byte(tag(6, WIRE_VARINT));
  writer.byte(span.kind + 1);
  writer.byte(tag(7, WIRE_FIXED64));
  writer.hrTime(span.startTime);
  writer.byte(tag(8, WIRE_FIXED64));
  writer.hrTime(span.endTime);
  writeSpanAttributes(writer, span.attributes);
  writeCount(writer, 10, span.droppedAttributesCount);
  for (const event of span.events) writeEvent(writer, event);
  writeCount(writer, 12, span.droppedEventsCount);
  for (const link of span.links) writeLink(writer, link);
  writeCount(writer, 14, span.droppedLinksCount);
  const status = span.status;
  writer.byte(tag(15, WIRE_LENGTH_DELIMITED));
  const statusStart = writer.begin();
  if (status.message) {
    writer.byte(tag(2, WIRE_LENGTH_DELIMITED));
    writer.string(status.message);
  }
  writer.byte(tag(3, WIRE_VARINT));
  writer.varint(status.code);
  writer.end(statusStart);
  // Field 16 takes a two-byte tag.
  writer.byte(0x85);
  writer.byte(0x01);
  writer.fixed32(spanFlags(spanContext.traceFlags, parent?.isRemote));
  writer.end(start);
}

/** `ResourceSpans.resource` and `ScopeSpans.scope`, tags included, per object: they repeat in every batch. */
const encodedResources = new WeakMap<Resource, Uint8Array>();
const encodedScopes = new WeakMap<InstrumentationScope, Uint8Array>();

function encodeOnce<T extends object>(
  cache: WeakMap<T, Uint8Array>,
  key: T,
  encode: (writer: ProtobufWriter) => void,
) {
  let encoded = cache.get(key);
  if (encoded === undefined) {
    const writer = new ProtobufWriter(256);
    encode(writer);
    encoded = Uint8Array.prototype.slice.call(writer.finish());
    cache.set(key, encoded);
  }
  return encoded;
}

function writeResource(writer: ProtobufWriter, resource: Resource): void {
  writer.byte(tag(1, WIRE_LENGTH_DELIMITED));
  const start = writer.begin();
  writeAttributes(writer, resource.attributes, 1);
  writer.end(start);
}

function resourceHeader(resource: Resource): Uint8Array {
  // Attributes still being detected would be missing from the cached copy: encode afresh until then.
  if (resource.asyncAttributesPending) {
    const writer = new ProtobufWriter(256);
    writeResource(writer, resource);
    return writer.finish();
  }
  return encodeOnce(encodedResources, resource, (writer) => writeResource(writer, resource));
}

function scopeHeader(scope: InstrumentationScope & { attributes?: Attributes }): Uint8Array {
  return encodeOnce(encodedScopes, scope, (writer) => {
    writer.byte(tag(1, WIRE_LENGTH_DELIMITED));
    const start = writer.begin();
    writer.byte(tag(1, WIRE_LENGTH_DELIMITED));
    writer.string(scope.name);
    if (scope.version) {
      writer.byte(tag(2, WIRE_LENGTH_DELIMITED));
      writer.string(scope.version);
    }
    if (scope.attributes) writeAttributes(writer, scope.attributes, 3);
    writer.end(start);
  });
}

/**
 * Spans encoded as they end, grouped by resource and scope: each group holds its spans as
 * `ScopeSpans.spans` fields, ready to be copied into a request. A span object therefore dies
 * young (the queue holds bytes, not objects that survive into the old generation), and building
 * the request at export time is a few copies.
 */
export class EncodedSpans {
  /** Spans in this batch. */
  size = 0;
  readonly #groups = new Map<Resource, Map<InstrumentationScope, ProtobufWriter>>();

  add(span: ReadableSpan): void {
    let byScope = this.#groups.get(span.resource);
    if (byScope === undefined) {
      byScope = new Map();
      this.#groups.set(span.resource, byScope);
    }
    let writer = byScope.get(span.instrumentationScope);
    if (writer === undefined) {
      writer = new ProtobufWriter(INITIAL_GROUP_BYTES);
      byScope.set(span.instrumentationScope, writer);
    }
    const mark = writer.pos;
    try {
      writeSpan(writer, span);
    } catch (error) {
      // A span that cannot be encoded leaves nothing half-written behind.
      writer.pos = mark;
      throw error;
    }
    this.size++;
  }

  /** The batch as one OTLP `ExportTraceServiceRequest`. */
  request(): Uint8Array {
    let capacity = 256;
    for (const byScope of this.#groups.values()) {
      for (const spans of byScope.values()) capacity += spans.pos + 256;
    }
    const writer = new ProtobufWriter(capacity);
    for (const [resource, byScope] of this.#groups) {
      writer.byte(tag(1, WIRE_LENGTH_DELIMITED));
      const resourceSpans = writer.begin();
      writer.raw(resourceHeader(resource));
      for (const [scope, spans] of byScope) {
        writer.byte(tag(2, WIRE_LENGTH_DELIMITED));
        const scopeSpans = writer.begin();
        writer.raw(scopeHeader(scope));
        writer.raw(spans.finish());
        if (scope.schemaUrl) {
          writer.byte(tag(3, WIRE_LENGTH_DELIMITED));
          writer.string(scope.schemaUrl);
        }
        writer.end(scopeSpans);
      }
      if (resource.schemaUrl) {
        writer.byte(tag(3, WIRE_LENGTH_DELIMITED));
        writer.string(resource.schemaUrl);
      }
      writer.end(resourceSpans);
    }
    return writer.finish();
  }
}

/** Encodes spans as one OTLP `ExportTraceServiceRequest`. */
export function encodeTraceExportRequest(spans: readonly ReadableSpan[]): Uint8Array {
  const batch = new EncodedSpans();
  for (const span of spans) batch.add(span);
  return batch.request();
}

/** Spans encoded as they end, for Sextant's OTLP/protobuf exporter. */
export class EncodedSpanQueue implements SpanQueue<EncodedSpans> {
  readonly #batchSize: number;
  /** Full batches, oldest first, then the one filling. */
  #full: EncodedSpans[] = [];
  #filling = new EncodedSpans();
  length = 0;

  constructor(batchSize: number) {
    this.#batchSize = batchSize;
  }

  push(span: ReadableSpan): void {
    if (this.#filling.size >= this.#batchSize) {
      this.#full.push(this.#filling);
      this.#filling = new EncodedSpans();
    }
    this.#filling.add(span);
    this.length++;
  }

  take(): { batch: EncodedSpans; size: number } {
    let batch = this.#full.shift();
    if (batch === undefined) {
      batch = this.#filling;
      this.#filling = new EncodedSpans();
    }
    this.length -= batch.size;
    return { batch, size: batch.size };
  }
}
