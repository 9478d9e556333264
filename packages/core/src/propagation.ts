import { randomUUID } from 'node:crypto';
import {
  type BaggageEntry,
  baggageEntryMetadataFromString,
  type Context,
  context,
  diag,
  propagation,
  type SpanContext,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type TraceState,
  trace,
} from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';
import { getRequestState } from './context.ts';
import type { InternalErrorSink } from './internal-errors.ts';

// Every header here is parsed by scanning character codes against lookup tables: no regular
// expression runs on input, so nothing can backtrack, and nothing is sliced before it is valid.

const TRACEPARENT = 'traceparent';
const TRACESTATE = 'tracestate';
const BAGGAGE = 'baggage';
const REQUEST_ID = 'x-request-id';

/** Far above any traceparent a known version can produce; refused before a single character is read. */
const MAX_TRACEPARENT_LENGTH = 512;
const TRACEPARENT_V00_LENGTH = 55;
const TRACE_ID_LENGTH = 32;
const SPAN_ID_LENGTH = 16;
/** Sampled (level 1) and random (level 2); the spec tells vendors to zero the bits it does not define. */
const KNOWN_TRACE_FLAGS = 0x03;
const TRACE_FLAGS_HEX: readonly string[] = ['00', '01', '02', '03'];

const MAX_TRACESTATE_MEMBERS = 32;
const MAX_TRACESTATE_KEY_LENGTH = 256;
const MAX_TRACESTATE_TENANT_LENGTH = 241;
const MAX_TRACESTATE_SYSTEM_LENGTH = 14;
const MAX_TRACESTATE_VALUE_LENGTH = 256;
/** What the spec asks vendors to propagate; longer lists are truncated the way it prescribes. */
const MAX_TRACESTATE_LENGTH = 512;
/** Members past this length are the first to go when a list is truncated. */
const TRACESTATE_LARGE_MEMBER_LENGTH = 128;
/**
 * Twice the longest valid list (32 members of 513 characters, and their commas), which leaves
 * room for whitespace and empty members; anything longer is refused without being scanned.
 */
const MAX_TRACESTATE_INPUT_LENGTH = 32_768;

const MAX_BAGGAGE_MEMBERS = 64;
const MAX_BAGGAGE_BYTES = 8192;

const MAX_REQUEST_ID_LENGTH = 128;

const TAB = 0x09;
const SPACE = 0x20;
const PERCENT = 0x25;
const COMMA = 0x2c;
const DASH = 0x2d;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const AT = 0x40;

function asciiTable(accepts: (code: number) => boolean): Uint8Array {
  const table = new Uint8Array(128);
  for (let code = 0; code < 128; code++) table[code] = accepts(code) ? 1 : 0;
  return table;
}

function hexTable(acceptsUppercase: boolean): Int8Array {
  const table = new Int8Array(128).fill(-1);
  for (let digit = 0; digit < 10; digit++) table[0x30 + digit] = digit;
  for (let digit = 10; digit < 16; digit++) {
    table[0x61 + digit - 10] = digit;
    if (acceptsUppercase) table[0x41 + digit - 10] = digit;
  }
  return table;
}

const isDigit = (code: number) => code >= 0x30 && code <= 0x39;
const isLowerAlpha = (code: number) => code >= 0x61 && code <= 0x7a;
const isAlpha = (code: number) => isLowerAlpha(code) || (code >= 0x41 && code <= 0x5a);

/** traceparent fields are lowercase hex; percent-encoding takes either case. */
const LOWER_HEX_VALUE = hexTable(false);
const HEX_VALUE = hexTable(true);
/** tracestate key characters after the first, apart from the one `@` of a multi-tenant key. */
const TRACESTATE_KEY_CHAR = asciiTable(
  (code) => isLowerAlpha(code) || isDigit(code) || '_-*/'.includes(String.fromCharCode(code)),
);
/** Printable ASCII except `,` and `=`. */
const TRACESTATE_VALUE_CHAR = asciiTable(
  (code) => code >= 0x20 && code <= 0x7e && code !== COMMA && code !== EQUALS,
);
/** RFC 7230 tchar: a baggage key and property key are tokens. */
const TOKEN_CHAR = asciiTable(
  (code) => isAlpha(code) || isDigit(code) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(code)),
);
/** Visible ASCII except `"`, `,`, `;` and `\`. */
const BAGGAGE_OCTET = asciiTable(
  (code) =>
    code >= 0x21 && code <= 0x7e && code !== 0x22 && code !== COMMA && code !== SEMICOLON && code !== 0x5c,
);
/** No `@`: an email sent as the id would go unredacted into every record of the request. */
const REQUEST_ID_CHAR = asciiTable(
  (code) => isAlpha(code) || isDigit(code) || '._:/+=-'.includes(String.fromCharCode(code)),
);

const inTable = (table: Uint8Array, code: number) => code < 128 && table[code] === 1;
/** The digit's value, or -1 for anything else, including the NaN of a read past the end. */
const hexDigit = (table: Int8Array, code: number) => (code < 128 ? (table[code] ?? -1) : -1);
const isOws = (code: number) => code === SPACE || code === TAB;

/** Where `code` first occurs in `text` between `start` and `end`, else `end`: a search never runs past its member. */
function indexWithin(text: string, code: number, start: number, end: number): number {
  for (let index = start; index < end; index++) if (text.charCodeAt(index) === code) return index;
  return end;
}

/** UTF-8 that does not decode becomes U+FFFD, as the baggage spec asks; a leading BOM is content. */
const UTF8_DECODER = new TextDecoder('utf-8', { ignoreBOM: true });
const UTF8_ENCODER = new TextEncoder();
const PERCENT_ENCODED_BYTE: readonly string[] = Array.from(
  { length: 256 },
  (_, byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`,
);

function reportFailure(sink: InternalErrorSink | undefined, kind: string, error: unknown): void {
  if (sink) sink.report(kind, error);
  else diag.warn(`@sextant/core: ${kind} failed`, error);
}

/** A header as one value: a second value (a repeated header) makes it unusable. */
function singleValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.length === 1 && typeof value[0] === 'string') return value[0];
  return undefined;
}

/**
 * Repeated headers combined as RFC 7230 says (joined with commas). Joining stops at the first
 * value that carries the total past `limit`, so a huge array costs no more than a long string.
 */
function combinedValue(value: unknown, limit: number): string | undefined {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) return undefined;
  let combined = '';
  for (let index = 0; index < value.length; index++) {
    const part: unknown = value[index];
    if (typeof part !== 'string') return undefined;
    combined = index === 0 ? part : `${combined},${part}`;
    if (combined.length > limit) break;
  }
  return combined;
}

// --- traceparent ---------------------------------------------------------------------------

/** Whether `length` characters at `offset` are lowercase hex and not all zero. */
function isLowerHexId(text: string, offset: number, length: number): boolean {
  let nonZero = false;
  for (let index = offset; index < offset + length; index++) {
    const code = text.charCodeAt(index);
    if (hexDigit(LOWER_HEX_VALUE, code) < 0) return false;
    if (code !== 0x30) nonZero = true;
  }
  return nonZero;
}

function isLowerHexIdOfLength(id: unknown, length: number): id is string {
  return typeof id === 'string' && id.length === length && isLowerHexId(id, 0, length);
}

function lowerHexByte(text: string, offset: number): number {
  const high = hexDigit(LOWER_HEX_VALUE, text.charCodeAt(offset));
  const low = hexDigit(LOWER_HEX_VALUE, text.charCodeAt(offset + 1));
  return high < 0 || low < 0 ? -1 : (high << 4) | low;
}

function parseTraceparent(header: string): SpanContext | undefined {
  if (header.length > MAX_TRACEPARENT_LENGTH) return undefined;
  let start = 0;
  let end = header.length;
  while (start < end && isOws(header.charCodeAt(start))) start++;
  while (end > start && isOws(header.charCodeAt(end - 1))) end--;
  const length = end - start;
  if (length < TRACEPARENT_V00_LENGTH) return undefined;

  const version = lowerHexByte(header, start);
  if (version < 0 || version === 0xff || header.charCodeAt(start + 2) !== DASH) return undefined;
  // Version 00 is exactly four fields; a later version may append fields, each after a dash.
  if (version === 0 && length !== TRACEPARENT_V00_LENGTH) return undefined;
  const extraFieldAt = start + TRACEPARENT_V00_LENGTH;
  if (length > TRACEPARENT_V00_LENGTH && header.charCodeAt(extraFieldAt) !== DASH) return undefined;
  const traceIdAt = start + 3;
  const spanIdAt = traceIdAt + TRACE_ID_LENGTH + 1;
  const flagsAt = spanIdAt + SPAN_ID_LENGTH + 1;
  if (
    !isLowerHexId(header, traceIdAt, TRACE_ID_LENGTH) ||
    header.charCodeAt(spanIdAt - 1) !== DASH ||
    !isLowerHexId(header, spanIdAt, SPAN_ID_LENGTH) ||
    header.charCodeAt(flagsAt - 1) !== DASH
  ) {
    return undefined;
  }
  const flags = lowerHexByte(header, flagsAt);
  if (flags < 0) return undefined;
  return {
    traceId: header.slice(traceIdAt, traceIdAt + TRACE_ID_LENGTH),
    spanId: header.slice(spanIdAt, spanIdAt + SPAN_ID_LENGTH),
    traceFlags: flags & KNOWN_TRACE_FLAGS,
    isRemote: true,
  };
}

// --- tracestate ----------------------------------------------------------------------------

/** simple-key `[a-z][a-z0-9_\-*\/]{0,255}` or multi-tenant `tenant@system` (241 and 14 characters at most). */
function isTraceStateKey(text: string, start: number, end: number): boolean {
  const length = end - start;
  if (length === 0 || length > MAX_TRACESTATE_KEY_LENGTH) return false;
  const first = text.charCodeAt(start);
  if (!isLowerAlpha(first) && !isDigit(first)) return false;
  let at = -1;
  for (let index = start + 1; index < end; index++) {
    const code = text.charCodeAt(index);
    if (code === AT) {
      if (at !== -1) return false;
      at = index;
    } else if (!inTable(TRACESTATE_KEY_CHAR, code)) {
      return false;
    }
  }
  if (at === -1) return isLowerAlpha(first);
  const systemLength = end - at - 1;
  return (
    at - start <= MAX_TRACESTATE_TENANT_LENGTH &&
    systemLength >= 1 &&
    systemLength <= MAX_TRACESTATE_SYSTEM_LENGTH &&
    isLowerAlpha(text.charCodeAt(at + 1))
  );
}

/** 1 to 256 printable ASCII characters except `,` and `=`, not ending in a space. */
function isTraceStateValue(text: string, start: number, end: number): boolean {
  const length = end - start;
  if (length === 0 || length > MAX_TRACESTATE_VALUE_LENGTH) return false;
  if (text.charCodeAt(end - 1) === SPACE) return false;
  for (let index = start; index < end; index++) {
    if (!inTable(TRACESTATE_VALUE_CHAR, text.charCodeAt(index))) return false;
  }
  return true;
}

function serializedLength(keys: readonly string[], values: readonly string[]): number {
  let length = keys.length > 0 ? keys.length - 1 : 0;
  for (let index = 0; index < keys.length; index++) length += keys[index]!.length + 1 + values[index]!.length;
  return length;
}

/** The spec's truncation: whole members only, members over 128 characters first, then from the right. */
function truncateTraceState(keys: string[], values: string[]): void {
  let length = serializedLength(keys, values);
  for (let index = keys.length - 1; index >= 0 && length > MAX_TRACESTATE_LENGTH; index--) {
    if (keys[index]!.length + 1 + values[index]!.length > TRACESTATE_LARGE_MEMBER_LENGTH) {
      keys.splice(index, 1);
      values.splice(index, 1);
      length = serializedLength(keys, values);
    }
  }
  while (length > MAX_TRACESTATE_LENGTH) {
    keys.pop();
    values.pop();
    length = serializedLength(keys, values);
  }
}

/**
 * The `tracestate` list, immutable, in header order (most recent vendor first). Only valid keys
 * and values ever get in, so what it serializes is always safe to send and to log.
 */
class W3CTraceState implements TraceState {
  readonly #keys: readonly string[];
  readonly #values: readonly string[];
  #serialized: string | undefined;

  constructor(keys: readonly string[], values: readonly string[]) {
    this.#keys = keys;
    this.#values = values;
  }

  get size(): number {
    return this.#keys.length;
  }

  set(key: string, value: string): TraceState {
    if (typeof key !== 'string' || typeof value !== 'string') return this;
    if (!isTraceStateKey(key, 0, key.length) || !isTraceStateValue(value, 0, value.length)) return this;
    // A new or updated member goes first; the list keeps the most recent 32.
    const keys = [key];
    const values = [value];
    for (let index = 0; index < this.#keys.length && keys.length < MAX_TRACESTATE_MEMBERS; index++) {
      if (this.#keys[index] === key) continue;
      keys.push(this.#keys[index]!);
      values.push(this.#values[index]!);
    }
    truncateTraceState(keys, values);
    return new W3CTraceState(keys, values);
  }

  unset(key: string): TraceState {
    const removed = this.#keys.indexOf(key);
    if (removed === -1) return this;
    return new W3CTraceState(
      this.#keys.filter((_, index) => index !== removed),
      this.#values.filter((_, index) => index !== removed),
    );
  }

  get(key: string): string | undefined {
    const index = this.#keys.indexOf(key);
    return index === -1 ? undefined : this.#values[index];
  }

  serialize(): string {
    if (this.#serialized === undefined) {
      let serialized = '';
      for (let index = 0; index < this.#keys.length; index++) {
        serialized += `${index === 0 ? '' : ','}${this.#keys[index]}=${this.#values[index]}`;
      }
      this.#serialized = serialized;
    }
    return this.#serialized;
  }
}

/**
 * The list, or undefined when there is none or it must be discarded: more than 32 members, a
 * repeated key, or any member that is not a valid `key=value` (empty members are skipped).
 */
function parseTraceState(header: string): W3CTraceState | undefined {
  if (header.length > MAX_TRACESTATE_INPUT_LENGTH) return undefined;
  const keys: string[] = [];
  const values: string[] = [];
  let position = 0;
  while (position <= header.length) {
    let end = header.indexOf(',', position);
    if (end === -1) end = header.length;
    const next = end + 1;
    let start = position;
    while (start < end && isOws(header.charCodeAt(start))) start++;
    while (end > start && isOws(header.charCodeAt(end - 1))) end--;
    position = next;
    if (start === end) continue;

    if (keys.length === MAX_TRACESTATE_MEMBERS) return undefined;
    const equals = indexWithin(header, EQUALS, start, end);
    if (equals === end) return undefined;
    if (!isTraceStateKey(header, start, equals)) return undefined;
    if (!isTraceStateValue(header, equals + 1, end)) return undefined;
    const key = header.slice(start, equals);
    if (keys.includes(key)) return undefined;
    keys.push(key);
    values.push(header.slice(equals + 1, end));
  }
  truncateTraceState(keys, values);
  return keys.length > 0 ? new W3CTraceState(keys, values) : undefined;
}

/** A trace state someone else built is re-validated: its serialization may hold anything. */
function serializeTraceState(traceState: TraceState | undefined): string | undefined {
  if (traceState === undefined) return undefined;
  if (traceState instanceof W3CTraceState) return traceState.size > 0 ? traceState.serialize() : undefined;
  const serialized: unknown = traceState.serialize();
  return typeof serialized === 'string' ? parseTraceState(serialized)?.serialize() : undefined;
}

/**
 * W3C Trace Context (`traceparent`, `tracestate`), strict: a traceparent that breaks any rule
 * of the spec leaves the context as it was, so the request starts a new trace, and its
 * tracestate is not read. Nothing it is given can make it throw.
 */
export class W3CTraceContextPropagator implements TextMapPropagator {
  readonly #errorSink: InternalErrorSink | undefined;

  constructor(errorSink?: InternalErrorSink) {
    this.#errorSink = errorSink;
  }

  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    try {
      const spanContext = trace.getSpanContext(ctx);
      if (spanContext === undefined || isTracingSuppressed(ctx)) return;
      const { traceId, spanId } = spanContext;
      if (!isLowerHexIdOfLength(traceId, TRACE_ID_LENGTH)) return;
      if (!isLowerHexIdOfLength(spanId, SPAN_ID_LENGTH)) return;
      const flags = TRACE_FLAGS_HEX[spanContext.traceFlags & KNOWN_TRACE_FLAGS];
      setter.set(carrier, TRACEPARENT, `00-${traceId}-${spanId}-${flags}`);
      const traceState = serializeTraceState(spanContext.traceState);
      if (traceState !== undefined) setter.set(carrier, TRACESTATE, traceState);
    } catch (error) {
      reportFailure(this.#errorSink, 'propagation_inject', error);
    }
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    try {
      const traceparent = singleValue(getter.get(carrier, TRACEPARENT));
      if (traceparent === undefined) return ctx;
      const spanContext = parseTraceparent(traceparent);
      if (spanContext === undefined) return ctx;
      const tracestate = combinedValue(getter.get(carrier, TRACESTATE), MAX_TRACESTATE_INPUT_LENGTH);
      const traceState = tracestate === undefined ? undefined : parseTraceState(tracestate);
      if (traceState !== undefined) spanContext.traceState = traceState;
      return trace.setSpanContext(ctx, spanContext);
    } catch (error) {
      reportFailure(this.#errorSink, 'propagation_extract', error);
      return ctx;
    }
  }

  fields(): string[] {
    return [TRACEPARENT, TRACESTATE];
  }
}

// --- baggage -------------------------------------------------------------------------------

function isToken(text: string, start: number, end: number): boolean {
  if (start === end) return false;
  for (let index = start; index < end; index++) {
    if (!inTable(TOKEN_CHAR, text.charCodeAt(index))) return false;
  }
  return true;
}

function isBaggageValue(text: string, start: number, end: number): boolean {
  for (let index = start; index < end; index++) {
    if (!inTable(BAGGAGE_OCTET, text.charCodeAt(index))) return false;
  }
  return true;
}

/** `key` or `key = value` items separated by `;`, each trimmed; their meaning is opaque to the spec. */
function isPropertyList(text: string, start: number, end: number): boolean {
  let position = start;
  while (position <= end) {
    const propertyEnd = indexWithin(text, SEMICOLON, position, end);
    let propertyStart = position;
    let itemEnd = propertyEnd;
    while (propertyStart < itemEnd && isOws(text.charCodeAt(propertyStart))) propertyStart++;
    while (itemEnd > propertyStart && isOws(text.charCodeAt(itemEnd - 1))) itemEnd--;
    const equals = indexWithin(text, EQUALS, propertyStart, itemEnd);
    let keyEnd = equals;
    while (keyEnd > propertyStart && isOws(text.charCodeAt(keyEnd - 1))) keyEnd--;
    if (!isToken(text, propertyStart, keyEnd)) return false;
    if (equals < itemEnd) {
      let valueStart = equals + 1;
      while (valueStart < itemEnd && isOws(text.charCodeAt(valueStart))) valueStart++;
      if (!isBaggageValue(text, valueStart, itemEnd)) return false;
    }
    position = propertyEnd + 1;
  }
  return true;
}

/** The percent-decoded value, or undefined when a `%` is not followed by two hex digits. */
function decodeBaggageValue(text: string, start: number, end: number): string | undefined {
  let percent = indexWithin(text, PERCENT, start, end);
  if (percent === end) return text.slice(start, end);
  for (; percent < end; percent = indexWithin(text, PERCENT, percent + 3, end)) {
    if (percent + 2 >= end) return undefined;
    if (hexDigit(HEX_VALUE, text.charCodeAt(percent + 1)) < 0) return undefined;
    if (hexDigit(HEX_VALUE, text.charCodeAt(percent + 2)) < 0) return undefined;
  }
  const encoded = text.slice(start, end);
  try {
    return decodeURIComponent(encoded);
  } catch {
    // With the syntax checked above, only bytes that are not UTF-8 get here; the spec wants
    // U+FFFD for those, where decodeURIComponent gives up on the whole value.
    return decodeReplacingInvalidUtf8(encoded);
  }
}

function decodeReplacingInvalidUtf8(encoded: string): string {
  const bytes = new Uint8Array(encoded.length);
  let length = 0;
  for (let index = 0; index < encoded.length; index++) {
    const code = encoded.charCodeAt(index);
    if (code === PERCENT) {
      bytes[length++] =
        (hexDigit(HEX_VALUE, encoded.charCodeAt(index + 1)) << 4) |
        hexDigit(HEX_VALUE, encoded.charCodeAt(index + 2));
      index += 2;
    } else {
      bytes[length++] = code;
    }
  }
  return UTF8_DECODER.decode(bytes.subarray(0, length));
}

/** Everything outside the baggage octets, and `%` itself, as UTF-8 percent-encoded bytes. */
function encodeBaggageValue(value: string): string {
  let plain = true;
  for (let index = 0; index < value.length && plain; index++) {
    const code = value.charCodeAt(index);
    plain = code !== PERCENT && inTable(BAGGAGE_OCTET, code);
  }
  if (plain) return value;
  // The encoder turns a lone surrogate into U+FFFD where encodeURIComponent would throw.
  const bytes = UTF8_ENCODER.encode(value);
  let encoded = '';
  for (const byte of bytes) {
    encoded +=
      byte !== PERCENT && inTable(BAGGAGE_OCTET, byte)
        ? String.fromCharCode(byte)
        : PERCENT_ENCODED_BYTE[byte];
  }
  return encoded;
}

const OWN_ENTRY = Object.freeze({ enumerable: true, writable: true, configurable: true });

/**
 * The entries of the first 64 valid members within the first 8192 bytes of the header; a
 * member that is malformed (bad key, bad character, bad percent-encoding, bad properties) is
 * dropped on its own. Undefined when none is left.
 */
function parseBaggage(header: string): Record<string, BaggageEntry> | undefined {
  let entries: Record<string, BaggageEntry> | undefined;
  let members = 0;
  let position = 0;
  while (position <= header.length && members < MAX_BAGGAGE_MEMBERS) {
    let end = header.indexOf(',', position);
    if (end === -1) end = header.length;
    const next = end + 1;
    let start = position;
    while (start < end && isOws(header.charCodeAt(start))) start++;
    while (end > start && isOws(header.charCodeAt(end - 1))) end--;
    if (end > MAX_BAGGAGE_BYTES) break;
    position = next;
    if (start === end) continue;

    const pairEnd = indexWithin(header, SEMICOLON, start, end);
    const equals = indexWithin(header, EQUALS, start, pairEnd);
    if (equals === pairEnd) continue;
    let keyEnd = equals;
    while (keyEnd > start && isOws(header.charCodeAt(keyEnd - 1))) keyEnd--;
    let valueStart = equals + 1;
    let valueEnd = pairEnd;
    while (valueStart < valueEnd && isOws(header.charCodeAt(valueStart))) valueStart++;
    while (valueEnd > valueStart && isOws(header.charCodeAt(valueEnd - 1))) valueEnd--;
    if (!isToken(header, start, keyEnd) || !isBaggageValue(header, valueStart, valueEnd)) continue;
    if (pairEnd < end && !isPropertyList(header, pairEnd + 1, end)) continue;
    const value = decodeBaggageValue(header, valueStart, valueEnd);
    if (value === undefined) continue;

    let metadataStart = pairEnd + 1;
    while (metadataStart < end && isOws(header.charCodeAt(metadataStart))) metadataStart++;
    const entry: BaggageEntry =
      pairEnd < end
        ? { value, metadata: baggageEntryMetadataFromString(header.slice(metadataStart, end)) }
        : { value };
    const key = header.slice(start, keyEnd);
    entries ??= {};
    // `__proto__` is a valid token: defined, not assigned, it stays an ordinary key. A
    // prototype-less record would avoid the branch but costs every request a dictionary object.
    if (key === '__proto__') Object.defineProperty(entries, key, { ...OWN_ENTRY, value: entry });
    else entries[key] = entry;
    members++;
  }
  return entries;
}

/**
 * W3C Baggage (`baggage`): at most 64 members and 8192 bytes each way, values percent-decoded
 * on the way in and percent-encoded on the way out, properties kept as entry metadata. A
 * malformed member is dropped; the others still arrive. Nothing it is given can make it throw.
 */
export class W3CBaggagePropagator implements TextMapPropagator {
  readonly #errorSink: InternalErrorSink | undefined;

  constructor(errorSink?: InternalErrorSink) {
    this.#errorSink = errorSink;
  }

  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    try {
      const baggage = propagation.getBaggage(ctx);
      if (baggage === undefined || isTracingSuppressed(ctx)) return;
      let header = '';
      let members = 0;
      for (const [key, entry] of baggage.getAllEntries()) {
        if (members === MAX_BAGGAGE_MEMBERS) break;
        if (typeof key !== 'string' || !isToken(key, 0, key.length)) continue;
        if (typeof entry?.value !== 'string') continue;
        const metadata: unknown = entry.metadata?.toString();
        const properties =
          typeof metadata === 'string' && metadata.length > 0 && isPropertyList(metadata, 0, metadata.length)
            ? `;${metadata}`
            : '';
        const member = `${key}=${encodeBaggageValue(entry.value)}${properties}`;
        // A member that does not fit is left out whole; a smaller one after it may still fit.
        if (header.length + (members === 0 ? 0 : 1) + member.length > MAX_BAGGAGE_BYTES) continue;
        header = members === 0 ? member : `${header},${member}`;
        members++;
      }
      if (members > 0) setter.set(carrier, BAGGAGE, header);
    } catch (error) {
      reportFailure(this.#errorSink, 'propagation_inject', error);
    }
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    try {
      const header = combinedValue(getter.get(carrier, BAGGAGE), MAX_BAGGAGE_BYTES);
      const entries = header === undefined ? undefined : parseBaggage(header);
      return entries === undefined ? ctx : propagation.setBaggage(ctx, propagation.createBaggage(entries));
    } catch (error) {
      reportFailure(this.#errorSink, 'propagation_extract', error);
      return ctx;
    }
  }

  fields(): string[] {
    return [BAGGAGE];
  }
}

/**
 * W3C Trace Context and W3C Baggage together. Called directly, not through upstream's
 * CompositePropagator: that one folds over its list with a closure and a try block per propagator
 * on every extract and inject, and neither of these two ever throws.
 */
class W3CPropagator implements TextMapPropagator {
  readonly #traceContext: W3CTraceContextPropagator;
  readonly #baggage: W3CBaggagePropagator;

  constructor(errorSink?: InternalErrorSink) {
    this.#traceContext = new W3CTraceContextPropagator(errorSink);
    this.#baggage = new W3CBaggagePropagator(errorSink);
  }

  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    this.#traceContext.inject(ctx, carrier, setter);
    this.#baggage.inject(ctx, carrier, setter);
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    return this.#baggage.extract(this.#traceContext.extract(ctx, carrier, getter), carrier, getter);
  }

  fields(): string[] {
    return [TRACEPARENT, TRACESTATE, BAGGAGE];
  }
}

/** W3C Trace Context and W3C Baggage together; failures go to `errorSink` (else to the OpenTelemetry diag logger). */
export function createPropagator(errorSink?: InternalErrorSink): TextMapPropagator {
  return new W3CPropagator(errorSink);
}

// --- correlation id ------------------------------------------------------------------------

/**
 * The correlation id if it is safe to log and echo: one value of 1 to 128 characters from
 * `A-Z a-z 0-9 . _ : / + = -`. Anything else (whitespace, control characters, quotes,
 * non-ASCII, too long, a repeated header) is refused, and the caller generates an id.
 */
export function sanitizeRequestId(value: unknown): string | undefined {
  const candidate = singleValue(value);
  if (candidate === undefined) return undefined;
  if (candidate.length === 0 || candidate.length > MAX_REQUEST_ID_LENGTH) return undefined;
  for (let index = 0; index < candidate.length; index++) {
    if (!inTable(REQUEST_ID_CHAR, candidate.charCodeAt(index))) return undefined;
  }
  return candidate;
}

export function generateRequestId(): string {
  return randomUUID();
}

// --- carriers ------------------------------------------------------------------------------

/** Node's IncomingHttpHeaders (lowercase keys; string, string[] or undefined) and plain job payloads. */
const carrierGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => Object.keys(carrier),
  // The propagators check the type of every value they read, so the getter passes them as they are.
  get: (carrier, key) => carrier[key] as string | string[] | undefined,
};

const carrierSetter: TextMapSetter<Record<string, string>> = {
  set(carrier, key, value) {
    carrier[key] = value;
  },
};

// Independent of whatever propagator is registered globally, so headers and job payloads read
// and write the same W3C fields whoever else is installed.
const carrierPropagator = createPropagator();

/** The context carried by HTTP headers or a job payload, on top of `base` (the active context by default). */
export function extractContext(carrier: Record<string, unknown>, base: Context = context.active()): Context {
  if (typeof carrier !== 'object' || carrier === null) return base;
  return carrierPropagator.extract(base, carrier, carrierGetter);
}

/** Writes `traceparent`, `tracestate`, `baggage` and the request's `x-request-id` into `carrier`. */
export function injectContext(carrier: Record<string, string>, ctx: Context = context.active()): void {
  if (typeof carrier !== 'object' || carrier === null) return;
  carrierPropagator.inject(ctx, carrier, carrierSetter);
  const requestId = sanitizeRequestId(getRequestState(ctx)?.requestId);
  if (requestId === undefined) return;
  try {
    carrier[REQUEST_ID] = requestId;
  } catch (error) {
    // A frozen carrier, or one whose setter throws: as for the other headers, never the caller's problem.
    reportFailure(undefined, 'propagation_inject', error);
  }
}
