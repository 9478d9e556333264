import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import protobuf, { type IConversionOptions } from 'protobufjs';

/**
 * A real OTLP/HTTP trace receiver on 127.0.0.1 for tests: it accepts `POST /v1/traces` in
 * protobuf (`application/x-protobuf`) or JSON (`application/json`), decodes every request
 * independently of the SDK's serializer, and keeps what it decoded. A request that does not
 * decode is answered 400 and kept in `decodeErrors()`; `spans()` and `waitForSpans()` then
 * throw, so the test fails.
 */
export interface OtlpReceiver {
  /** Base URL (`http://127.0.0.1:PORT`), as `tracing.endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT` takes it. */
  readonly url: string;
  readonly port: number;
  /** Every request decoded so far, in arrival order. */
  requests(): DecodedRequest[];
  /** Why requests failed to decode; empty while every one decoded. */
  decodeErrors(): Error[];
  /** Every span received so far, in arrival order. */
  spans(): DecodedSpan[];
  /**
   * Resolves with the spans received once there are at least `count` (of those `match`
   * accepts, when given); rejects after `timeoutMs` (default 5000) or on a decoding error.
   */
  waitForSpans(count: number, timeoutMs?: number): Promise<DecodedSpan[]>;
  waitForSpans(
    match: (span: DecodedSpan) => boolean,
    count: number,
    timeoutMs?: number,
  ): Promise<DecodedSpan[]>;
  close(): Promise<void>;
}

export type DecodedValue =
  | string
  | number
  | boolean
  | null
  | DecodedValue[]
  | { [key: string]: DecodedValue };

export interface DecodedRequest {
  readonly contentType: 'application/x-protobuf' | 'application/json';
  readonly headers: IncomingHttpHeaders;
  readonly spans: DecodedSpan[];
}

export interface DecodedEvent {
  readonly name: string;
  readonly timeUnixNano: string;
  readonly attributes: Record<string, DecodedValue>;
}

export interface DecodedSpan {
  /** Lower-case hex, as `spanContext().traceId`. */
  readonly traceId: string;
  readonly spanId: string;
  /** `''` for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly startTimeUnixNano: string;
  readonly endTimeUnixNano: string;
  readonly attributes: Record<string, DecodedValue>;
  readonly events: DecodedEvent[];
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message: string };
  readonly resource: Record<string, DecodedValue>;
  readonly scope: { readonly name: string; readonly version: string };
}

// The subset of opentelemetry/proto/{common,resource,trace,collector/trace}/v1 that spans use,
// with the upstream field numbers.
const OTLP_TRACE_PROTO = `
syntax = "proto3";
package otlp;

message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope {
  string name = 1;
  string version = 2;
  repeated KeyValue attributes = 3;
  uint32 dropped_attributes_count = 4;
}
message Resource {
  repeated KeyValue attributes = 1;
  uint32 dropped_attributes_count = 2;
}
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1; }
message ExportTracePartialSuccess {
  int64 rejected_spans = 1;
  string error_message = 2;
}
message ResourceSpans {
  Resource resource = 1;
  repeated ScopeSpans scope_spans = 2;
  string schema_url = 3;
}
message ScopeSpans {
  InstrumentationScope scope = 1;
  repeated Span spans = 2;
  string schema_url = 3;
}
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  fixed32 flags = 16;
  string name = 5;
  enum SpanKind {
    SPAN_KIND_UNSPECIFIED = 0;
    SPAN_KIND_INTERNAL = 1;
    SPAN_KIND_SERVER = 2;
    SPAN_KIND_CLIENT = 3;
    SPAN_KIND_PRODUCER = 4;
    SPAN_KIND_CONSUMER = 5;
  }
  SpanKind kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  uint32 dropped_attributes_count = 10;
  message Event {
    fixed64 time_unix_nano = 1;
    string name = 2;
    repeated KeyValue attributes = 3;
    uint32 dropped_attributes_count = 4;
  }
  repeated Event events = 11;
  uint32 dropped_events_count = 12;
  message Link {
    bytes trace_id = 1;
    bytes span_id = 2;
    string trace_state = 3;
    repeated KeyValue attributes = 4;
    uint32 dropped_attributes_count = 5;
    fixed32 flags = 6;
  }
  repeated Link links = 13;
  uint32 dropped_links_count = 14;
  Status status = 15;
}
message Status {
  reserved 1;
  string message = 2;
  enum StatusCode {
    STATUS_CODE_UNSET = 0;
    STATUS_CODE_OK = 1;
    STATUS_CODE_ERROR = 2;
  }
  StatusCode code = 3;
}
`;

const root = protobuf.parse(OTLP_TRACE_PROTO).root;
const ExportTraceServiceRequest = root.lookupType('otlp.ExportTraceServiceRequest');
const ExportTraceServiceResponse = root.lookupType('otlp.ExportTraceServiceResponse');
const EMPTY_PROTOBUF_RESPONSE = ExportTraceServiceResponse.encode(
  ExportTraceServiceResponse.create({}),
).finish();
const TO_OBJECT_OPTIONS: IConversionOptions = { longs: String, enums: Number, defaults: true, oneofs: true };
const TRACES_PATH = '/v1/traces';

/**
 * An OTLP/protobuf `ExportTraceServiceRequest` as protobufjs reads it, every field present with its
 * default (bytes as base64, 64-bit integers as decimal strings): for comparing two encoders' output.
 */
export function decodeTraceRequest(payload: Uint8Array): Record<string, unknown> {
  return ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(payload), {
    ...TO_OBJECT_OPTIONS,
    bytes: String,
  });
}

// Both decoders end in the same camelCase object shape (protobufjs converts field names as the
// OTLP/JSON mapping does); they differ in ids (bytes vs hex strings) and 64-bit integers.
type Wire = Record<string, any>;

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const requests: DecodedRequest[] = [];
  const errors: Error[] = [];
  const received: DecodedSpan[] = [];
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const listener of listeners) listener();
  };

  const server = createServer((req, res) => {
    readBody(req).then(
      (body) => handle(req, res, body),
      (error: unknown) => fail(res, error),
    );
  });

  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    if (req.method !== 'POST' || req.url !== TRACES_PATH) {
      res.writeHead(404).end();
      return;
    }
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    let request: DecodedRequest;
    try {
      const payload = req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body;
      if (contentType === 'application/x-protobuf') {
        const message = ExportTraceServiceRequest.decode(payload);
        const wire = ExportTraceServiceRequest.toObject(message, TO_OBJECT_OPTIONS);
        request = { contentType, headers: req.headers, spans: flattenSpans(wire) };
      } else if (contentType === 'application/json') {
        const wire = JSON.parse(payload.toString('utf8')) as Wire;
        if (!Array.isArray(wire.resourceSpans)) throw new Error('JSON request has no resourceSpans array');
        request = { contentType, headers: req.headers, spans: flattenSpans(wire) };
      } else {
        throw new Error(`unexpected content-type ${JSON.stringify(req.headers['content-type'])}`);
      }
    } catch (error) {
      fail(res, error);
      return;
    }
    requests.push(request);
    received.push(...request.spans);
    res
      .writeHead(200, { 'content-type': contentType })
      .end(contentType === 'application/json' ? '{}' : EMPTY_PROTOBUF_RESPONSE);
    notify();
  };

  const fail = (res: ServerResponse, error: unknown) => {
    errors.push(error instanceof Error ? error : new Error(String(error)));
    if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
    res.end('undecodable OTLP request');
    notify();
  };

  const checkErrors = () => {
    if (errors.length > 0) throw new Error(`OTLP receiver could not decode a request: ${errors[0]!.message}`);
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  function waitForSpans(
    countOrMatch: number | ((span: DecodedSpan) => boolean),
    countOrTimeout?: number,
    maybeTimeout?: number,
  ): Promise<DecodedSpan[]> {
    const match = typeof countOrMatch === 'function' ? countOrMatch : undefined;
    const count = typeof countOrMatch === 'function' ? (countOrTimeout ?? 1) : countOrMatch;
    const timeoutMs = (typeof countOrMatch === 'function' ? maybeTimeout : countOrTimeout) ?? 5000;
    return new Promise((resolve, reject) => {
      const check = () => {
        try {
          checkErrors();
        } catch (error) {
          done();
          reject(error);
          return;
        }
        const found = match ? received.filter(match) : [...received];
        if (found.length >= count) {
          done();
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`OTLP receiver: fewer than ${count} matching spans arrived within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests: () => [...requests],
    decodeErrors: () => [...errors],
    spans() {
      checkErrors();
      return [...received];
    },
    waitForSpans,
    close() {
      return new Promise((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // The exporter keeps connections alive; they must not hold the close open.
        server.closeAllConnections();
      });
    },
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function flattenSpans(request: Wire): DecodedSpan[] {
  const spans: DecodedSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const resource = decodeAttributes(resourceSpans.resource?.attributes);
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      const scope = { name: scopeSpans.scope?.name ?? '', version: scopeSpans.scope?.version ?? '' };
      for (const span of scopeSpans.spans ?? []) {
        spans.push({
          traceId: decodeId(span.traceId),
          spanId: decodeId(span.spanId),
          parentSpanId: decodeId(span.parentSpanId),
          name: span.name ?? '',
          kind: Number(span.kind ?? 0),
          startTimeUnixNano: String(span.startTimeUnixNano ?? '0'),
          endTimeUnixNano: String(span.endTimeUnixNano ?? '0'),
          attributes: decodeAttributes(span.attributes),
          events: (span.events ?? []).map((event: Wire) => ({
            name: event.name ?? '',
            timeUnixNano: String(event.timeUnixNano ?? '0'),
            attributes: decodeAttributes(event.attributes),
          })),
          status: { code: Number(span.status?.code ?? 0), message: span.status?.message ?? '' },
          resource,
          scope,
        });
      }
    }
  }
  return spans;
}

/** Protobuf ids arrive as bytes, OTLP/JSON ids as hex strings already. */
function decodeId(id: unknown): string {
  if (id === undefined || id === null) return '';
  if (typeof id === 'string') return id.toLowerCase();
  return Buffer.from(id as Uint8Array).toString('hex');
}

function decodeAttributes(list: Wire[] | undefined): Record<string, DecodedValue> {
  const attributes: Record<string, DecodedValue> = {};
  for (const { key, value } of list ?? []) attributes[key] = decodeValue(value);
  return attributes;
}

function decodeValue(value: Wire | undefined): DecodedValue {
  if (value === undefined || value === null) return null;
  // protobufjs names the set member of the oneof in `value`; OTLP/JSON carries only that member.
  const member: string = typeof value.value === 'string' ? value.value : (Object.keys(value)[0] ?? '');
  switch (member) {
    case 'stringValue':
      return value.stringValue;
    case 'boolValue':
      return value.boolValue;
    case 'intValue':
    case 'doubleValue':
      return Number(value[member]);
    case 'arrayValue':
      return (value.arrayValue.values ?? []).map(decodeValue);
    case 'kvlistValue':
      return decodeAttributes(value.kvlistValue.values);
    case 'bytesValue':
      return decodeId(value.bytesValue);
    default:
      return null;
  }
}
