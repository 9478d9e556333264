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
    // The first line goes straight to a write; the next two wait; the fourth finds no room.
    const accepted = [writer.write(long), writer.write(long), writer.write(long), writer.write(long)];
    await flushed(writer);
    closeSync(fd);
    expect(accepted).toEqual([true, true, true, false]);
    expect(kinds).toEqual(['log_dropped']);
    expect(readFileSync(path, 'utf8')).toBe(long.repeat(3));
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
    const writerUrl = new URL('./line-writer.ts', import.meta.url).href;
    // Opening process.stdout makes the pipe non-blocking, as in any app that also uses console.log;
    // the parent reads nothing for a while, so the pipe fills and writes answer EAGAIN.
    const script = `
      process.stdout;
      const { LineWriter } = await import(${JSON.stringify(writerUrl)});
      const errors = [];
      const writer = new LineWriter({ fd: 1, sync: false, onError: (kind, error) => errors.push(kind + ' ' + error.code) });
      const filler = 'y'.repeat(1000);
      for (let i = 0; i < 3000; i++) writer.write(JSON.stringify({ i, filler }) + '\\n');
      setTimeout(() => {
        if (errors.length > 0) process.stderr.write(errors.join(',') + '\\n');
        process.exit(0);
      }, 300);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pause();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stdout.resume();
    await new Promise((resolve) => child.once('close', resolve));
    const lines = Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean);
    expect(new Set(lines.map((text) => JSON.parse(text).i)).size).toBe(3000);
    expect(lines).toHaveLength(3000);
    expect(stderr).toBe('');
  });
});
