/**
 * Sextant's stdout: JSON lines written asynchronously, in batches. While one write is with the
 * operating system (in libuv's thread pool, so a slow reader never stalls the event loop), the
 * lines logged meanwhile wait in an array and go out together in the next write, so a busy
 * service makes one system call per batch rather than per record.
 *
 * On a pipe or a socket, a batch is cut at line ends into writes of at most PIPE_BUF bytes, which a
 * pipe takes whole or not at all: another writer on the same pipe (the application's
 * `console.log`, a child process, or this writer's own exit flush while a write is still blocked
 * in the pipe) can come between two lines but never inside one. Only a line longer than that can
 * be cut.
 *
 * pino's own destination (sonic-boom) measures the whole pending batch in bytes again for every
 * line it appends, which made a line cost several microseconds under load; this writer counts
 * each line once. Lines still pending when the process exits (also after an uncaught exception)
 * are written synchronously then, and so are lines written after that (from the application's own
 * `exit` listeners); only a SIGKILL loses them, and a write still blocked in a full pipe at exit
 * (one chunk) may come out after them or not at all.
 */
import { fstatSync, write, writeSync } from 'node:fs';

/** Pending lines beyond this many characters are dropped (and reported), so a blocked stdout cannot exhaust memory. */
export const MAX_PENDING_CHARACTERS = 32 * 1024 * 1024;
/** What Linux's pipes take in one write atomically (POSIX PIPE_BUF). */
export const PIPE_ATOMIC_BYTES = 4096;
/** A full non-blocking pipe answers EAGAIN: try again after this pause. */
const RETRY_AFTER_MS = 10;
/** How long a synchronous write (sync mode, or everything pending at exit, in all) waits for a full pipe. */
const SYNC_WAIT_MS = 10_000;

export interface LineWriterOptions {
  /** The file descriptor to write to (1 for stdout). */
  fd: number;
  /** One write per line, on the calling thread: nothing is ever pending. */
  sync: boolean;
  /** A failed write (the lines in it are lost) or lines dropped for want of room. */
  onError: (kind: 'log_destination' | 'log_dropped', error: unknown) => void;
  maxPendingCharacters?: number;
  /** How long a synchronous write (sync mode, or all that is pending at exit) waits for a full pipe. */
  syncWaitMs?: number;
}

const live = new Set<WeakRef<LineWriter>>();
const forget = new FinalizationRegistry<WeakRef<LineWriter>>((ref) => live.delete(ref));
let exitHookInstalled = false;

function flushAllOnExit(): void {
  const started = performance.now();
  for (const ref of live) ref.deref()?.flushSync(started);
}

function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'EAGAIN' || code === 'EBUSY';
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Pipes and sockets are where other writers share the stream and a write can be cut short. */
function isPipeOrSocket(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    // A closed descriptor: its writes report their own errors.
    return false;
  }
}

/** How many lines (newlines) `data` holds. */
function countLines(data: Buffer): number {
  let lines = 0;
  for (let at = data.indexOf(10); at !== -1; at = data.indexOf(10, at + 1)) lines++;
  return lines;
}

export class LineWriter {
  readonly #fd: number;
  readonly #sync: boolean;
  readonly #onError: LineWriterOptions['onError'];
  readonly #maxPending: number;
  readonly #syncWaitMs: number;
  /** Writes are cut at line ends to at most PIPE_ATOMIC_BYTES. */
  readonly #chunked: boolean;
  #pending: string[] = [];
  #pendingCharacters = 0;
  /** The bytes of the write in progress (with the operating system, or waiting to be retried). */
  #inFlight: Buffer | undefined;
  /** The rest of the batch being written, chunk after chunk, after the one in flight. */
  #queued: Buffer[] = [];
  /** A write the operating system refused for now (a full pipe), to be retried after a pause. */
  #awaitingRetry: Buffer | undefined;
  #flushWaiters: Array<() => void> = [];
  /** After the exit flush: the event loop will not turn again, every write is synchronous. */
  #exitDeadline: number | undefined;

  constructor(options: LineWriterOptions) {
    this.#fd = options.fd;
    this.#sync = options.sync;
    this.#onError = options.onError;
    this.#maxPending = options.maxPendingCharacters ?? MAX_PENDING_CHARACTERS;
    this.#syncWaitMs = options.syncWaitMs ?? SYNC_WAIT_MS;
    this.#chunked = isPipeOrSocket(options.fd);
    if (!this.#sync) {
      const ref = new WeakRef(this);
      live.add(ref);
      forget.register(this, ref);
      if (!exitHookInstalled) {
        exitHookInstalled = true;
        process.once('exit', flushAllOnExit);
      }
    }
  }

  /** Takes one line (with its newline). Never throws. */
  write(line: string): boolean {
    if (this.#sync) {
      this.#writeChunksSync(this.#encode([line]), performance.now() + this.#syncWaitMs);
      return true;
    }
    if (this.#exitDeadline !== undefined) {
      this.#writeChunksSync(this.#encode([line]), this.#exitDeadline);
      return true;
    }
    if (this.#pendingCharacters + line.length > this.#maxPending) {
      this.#drop();
      return false;
    }
    this.#pending.push(line);
    this.#pendingCharacters += line.length;
    if (this.#inFlight === undefined) this.#writeNextBatch();
    return true;
  }

  /** Calls back once every line taken so far has been written (or failed). */
  flush(callback?: (error?: Error) => void): void {
    // After the exit flush, everything was written as it came (the event loop will not turn again).
    if ((this.#inFlight === undefined && this.#pending.length === 0) || this.#exitDeadline !== undefined) {
      callback?.();
      return;
    }
    if (callback) this.#flushWaiters.push(() => callback());
  }

  /**
   * Writes everything pending now, on this thread, waiting for a full pipe for `syncWaitMs` from
   * `started` (`performance.now()` time) in all: for the moment the process exits. Lines written
   * after it are written at once, within the same time.
   */
  flushSync(started = performance.now()): void {
    const deadline = started + this.#syncWaitMs;
    this.#exitDeadline = deadline;
    // A write the operating system already has is left to finish (writing it again could
    // duplicate lines); one waiting to be retried is written here, then the rest, in order.
    const chunks: Buffer[] = [];
    if (this.#awaitingRetry !== undefined) chunks.push(this.#awaitingRetry);
    chunks.push(...this.#queued);
    if (this.#pending.length > 0) chunks.push(...this.#encode(this.#pending));
    this.#awaitingRetry = undefined;
    this.#queued = [];
    this.#pending = [];
    this.#pendingCharacters = 0;
    this.#writeChunksSync(chunks, deadline);
    this.#settleFlushes();
  }

  /** `lines` as the writes to make: one buffer, or pieces of whole lines for a pipe. */
  #encode(lines: readonly string[]): Buffer[] {
    const data = Buffer.from(lines.length === 1 ? lines[0]! : lines.join(''), 'utf8');
    if (!this.#chunked || data.length <= PIPE_ATOMIC_BYTES) return [data];
    const pieces: Buffer[] = [];
    let start = 0;
    while (data.length - start > PIPE_ATOMIC_BYTES) {
      // The last line end that fits; a line longer than a piece goes out whole, on its own.
      let end = data.lastIndexOf(10, start + PIPE_ATOMIC_BYTES - 1) + 1;
      if (end <= start) end = data.indexOf(10, start) + 1 || data.length;
      pieces.push(data.subarray(start, end));
      start = end;
    }
    if (start < data.length) pieces.push(data.subarray(start));
    return pieces;
  }

  #writeNextBatch(): void {
    const pieces = this.#encode(this.#pending);
    this.#pending = [];
    this.#pendingCharacters = 0;
    this.#writeAsync(pieces.shift()!);
    this.#queued = pieces;
  }

  #writeAsync(data: Buffer): void {
    this.#inFlight = data;
    write(this.#fd, data, 0, data.length, null, (error, written) => {
      // The exit flush wrote what was left meanwhile; the event loop turned once more.
      if (this.#exitDeadline !== undefined) return;
      if (error) {
        if (isRetryable(error)) {
          this.#awaitingRetry = data;
          setTimeout(() => {
            // flushSync (process exit) wrote it meanwhile.
            if (this.#awaitingRetry !== data) return;
            this.#awaitingRetry = undefined;
            this.#writeAsync(data);
          }, RETRY_AFTER_MS).unref();
          return;
        }
        this.#onError('log_destination', error);
      } else if (written < data.length) {
        this.#writeAsync(data.subarray(written));
        return;
      }
      const next = this.#queued.shift();
      if (next !== undefined) {
        this.#writeAsync(next);
        return;
      }
      this.#inFlight = undefined;
      if (this.#pending.length > 0) this.#writeNextBatch();
      else this.#settleFlushes();
    });
  }

  /** Writes `chunks` in order on this thread, waiting for a full pipe until `deadline`. */
  #writeChunksSync(chunks: readonly Buffer[], deadline: number): void {
    for (let i = 0; i < chunks.length; i++) {
      const data = chunks[i]!;
      let offset = 0;
      while (offset < data.length) {
        try {
          offset += writeSync(this.#fd, data, offset, data.length - offset);
        } catch (error) {
          if (isRetryable(error) && performance.now() < deadline) {
            sleepSync(RETRY_AFTER_MS);
            continue;
          }
          if (isRetryable(error)) {
            // Given up: the rest is counted, not written after a line cut short.
            let lost = countLines(data.subarray(offset));
            for (let j = i + 1; j < chunks.length; j++) lost += countLines(chunks[j]!);
            this.#onError(
              'log_dropped',
              new Error(`${lost} log lines dropped: stdout was full for ${this.#syncWaitMs} ms`),
            );
            return;
          }
          this.#onError('log_destination', error);
          break;
        }
      }
    }
  }

  #drop(): void {
    // The sink counts occurrences and limits how often this is logged.
    this.#onError(
      'log_dropped',
      new Error(`log line dropped: more than ${this.#maxPending} characters were already waiting for stdout`),
    );
  }

  #settleFlushes(): void {
    const waiters = this.#flushWaiters;
    this.#flushWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
