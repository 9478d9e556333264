import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LineWriter } from './line-writer.ts';

function tempFile(): { path: string; fd: number } {
  const path = join(mkdtempSync(join(tmpdir(), 'sextant-lines-')), 'out.log');
  return { path, fd: openSync(path, 'a') };
}

function flushed(writer: LineWriter): Promise<void> {
  return new Promise((resolve) => writer.flush(() => resolve()));
}

const line = (i: number) => `${JSON.stringify({ i, msg: 'record', text: 'zürich ✓ 東京' })}\n`;

describe('LineWriter', () => {
  it('writes every line, in order, in fewer writes than lines', async () => {
    const { path, fd } = tempFile();
    const errors: unknown[] = [];
    const writer = new LineWriter({ fd, sync: false, onError: (_kind, error) => errors.push(error) });
    for (let i = 0; i < 5000; i++) writer.write(line(i));
    await flushed(writer);
    closeSync(fd);
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(5000);
    expect(lines.map((text) => JSON.parse(text).i)).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    expect(JSON.parse(lines[4999]!).text).toBe('zürich ✓ 東京');
    expect(errors).toEqual([]);
  });

  it('in sync mode has each line written before write returns', () => {
    const { path, fd } = tempFile();
    const writer = new LineWriter({ fd, sync: true, onError: () => undefined });
    writer.write(line(1));
    expect(readFileSync(path, 'utf8')).toBe(line(1));
    writer.write(line(2));
    expect(readFileSync(path, 'utf8')).toBe(line(1) + line(2));
    closeSync(fd);
  });

  it('drops lines beyond its limit and reports them, instead of growing without bound', async () => {
    const { path, fd } = tempFile();
    const kinds: string[] = [];
    const writer = new LineWriter({
      fd,
      sync: false,
      onError: (kind) => kinds.push(kind),
      maxPendingCharacters: 1000,
    });
    const long = `${'x'.repeat(400)}\n`;
    // The lines of one turn of the event loop wait for its end: the third finds no room.
    const accepted = [writer.write(long), writer.write(long), writer.write(long), writer.write(long)];
    await flushed(writer);
    closeSync(fd);
    expect(accepted).toEqual([true, true, false, false]);
    expect(kinds).toEqual(['log_dropped', 'log_dropped']);
    expect(readFileSync(path, 'utf8')).toBe(long.repeat(2));
  });

  it('reports a failed write and goes on with the next lines', async () => {
    const kinds: string[] = [];
    const writer = new LineWriter({ fd: 987_654, sync: false, onError: (kind) => kinds.push(kind) });
    writer.write(line(1));
    await flushed(writer);
    expect(kinds).toEqual(['log_destination']);
    writer.write(line(2));
    await flushed(writer);
    expect(kinds).toEqual(['log_destination', 'log_destination']);
  });

  it('waits for a full non-blocking pipe instead of losing lines, and flushes what is pending at exit', async () => {
    // The parent reads nothing for a while, so the pipe fills and writes answer EAGAIN.
    const run = runWithUnreadStdout(`
      const errors = [];
      const writer = new LineWriter({ fd: 1, sync: false, onError: (kind, error) => errors.push(kind + ' ' + error.code) });
      const filler = 'y'.repeat(1000);
      for (let i = 0; i < 3000; i++) writer.write(JSON.stringify({ i, filler }) + '\\n');
      setTimeout(() => {
        if (errors.length > 0) process.stderr.write(errors.join(',') + '\\n');
        process.exit(0);
      }, 300);
    `);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lines = await run.readLines();
    expect(new Set(lines.map((text) => JSON.parse(text).i)).size).toBe(3000);
    expect(lines).toHaveLength(3000);
    expect(run.stderr()).toBe('');
  });

  it('never blocks the event loop on a full pipe, and at exit writes every line whole and in order', async () => {
    // Nothing in the child touches process.stdout: the pipe it inherits starts out blocking. Lines
    // come in bursts over several turns, and the process exits while the pipe is still full.
    const run = runWithUnreadStdout(`
      const errors = [];
      const writer = new LineWriter({ fd: 1, sync: false, onError: (kind, error) => errors.push(kind + ' ' + error.code) });
      const filler = 'y'.repeat(1000);
      let i = 0;
      const burst = () => { for (let k = 0; k < 500; k++, i++) writer.write(JSON.stringify({ i, filler }) + '\\n'); };
      burst();
      setTimeout(() => {
        burst();
        // The event loop still turns while the pipe is full.
        process.stderr.write('loop turned\\n');
        setTimeout(() => {
          burst();
          if (errors.length > 0) process.stderr.write(errors.join(',') + '\\n');
          process.stderr.write('exiting\\n');
          process.exit(0);
        }, 20);
      }, 20);
    `);
    // The child's timers ran and it is exiting, with stdout unread all along; the reading starts
    // a moment later, while the child is writing what it still holds.
    await run.stderrIncludes('exiting');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const lines = await run.readLines();
    // Every line parses (none cut or mixed with another), each record once, in order.
    expect(lines.map((text) => JSON.parse(text).i)).toEqual(Array.from({ length: 1500 }, (_, i) => i));
    expect(run.stderr()).toBe('loop turned\nexiting\n');
  });

  it('keeps the process alive while a caller waits for a flush that a full pipe holds up', async () => {
    const run = runWithUnreadStdout(`
      const writer = new LineWriter({ fd: 1, sync: false, onError: () => {} });
      const filler = 'y'.repeat(1000);
      for (let i = 0; i < 1000; i++) writer.write(JSON.stringify({ i, filler }) + '\\n');
      // What runs after the flush needs the event loop: an exit would have skipped it.
      setTimeout(() => writer.flush(() => setImmediate(() => process.stderr.write('flushed\\n'))), 20);
    `);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await run.readLines()).toHaveLength(1000);
    expect(run.stderr()).toBe('flushed\n');
  });
});

/**
 * Runs `body` (an ES module, with `LineWriter` imported) in a child process whose stdout is a pipe
 * that this side leaves unread until `readLines`.
 */
function runWithUnreadStdout(body: string) {
  const writerUrl = new URL('./line-writer.ts', import.meta.url).href;
  const script = `const { LineWriter } = await import(${JSON.stringify(writerUrl)});\n${body}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pause();
  let stderr = '';
  const stderrWaiters: Array<() => void> = [];
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    for (const check of stderrWaiters) check();
  });
  return {
    stderr: () => stderr,
    stderrIncludes: (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (stderr.includes(text)) resolve();
        };
        stderrWaiters.push(check);
        check();
      }),
    /** Starts reading stdout; its lines once the child has exited. */
    async readLines(): Promise<string[]> {
      const chunks: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
      child.stdout.resume();
      await new Promise((resolve) => child.once('close', resolve));
      return Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean);
    },
  };
}
