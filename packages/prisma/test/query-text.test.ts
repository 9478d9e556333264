import { describe, expect, it } from 'vitest';
import { sanitizeQueryText } from '../src/query-text.ts';

const postgres = (sql: string) => sanitizeQueryText(sql, 'postgresql');

describe('sanitizeQueryText on PostgreSQL', () => {
  it('replaces string literals, doubled quotes included', () => {
    expect(postgres(`SELECT * FROM t WHERE name = 'O''Brien' AND note = ''`)).toBe(
      'SELECT * FROM t WHERE name = ? AND note = ?',
    );
    expect(postgres(`SELECT 'a' || 'b''' || 'c'`)).toBe('SELECT ? || ? || ?');
  });

  it('treats a backslash as a plain character in a standard string, and as an escape in E strings', () => {
    expect(postgres(String.raw`SELECT 'C:\' AS path, 'secret' AS s`)).toBe('SELECT ? AS path, ? AS s');
    expect(postgres(String.raw`SELECT E'it\'s secret', e'\\' AS b, 'x'`)).toBe('SELECT ?, ? AS b, ?');
    expect(postgres(String.raw`SELECT E'a''b\'c'`)).toBe('SELECT ?');
  });

  it('replaces prefixed literals: bit, hex, national and Unicode strings', () => {
    expect(postgres(`SELECT B'1010', X'1F', N'name', U&'d\\0061t\\+000061' UESCAPE '!'`)).toBe(
      'SELECT ?, ?, ?, ? UESCAPE ?',
    );
  });

  it('replaces dollar-quoted strings, tagged or not, whatever they contain', () => {
    expect(postgres(`SELECT $$it's 42 "x"$$, $fn$ body with $$ inside $fn$, $t_1$x$t_1$`)).toBe(
      'SELECT ?, ?, ?',
    );
  });

  it('keeps $n placeholders, and identifiers holding $ or digits', () => {
    const sql =
      'SELECT t1.col2, a$1, x$y$ FROM t1 JOIN s2 ON s2.id = t1.s2_id WHERE t1.col2 = $1 AND $12 = $2';
    expect(postgres(sql)).toBe(sql);
  });

  it('keeps quoted identifiers, even with quotes, digits or apostrophes in them', () => {
    expect(postgres(`SELECT "col 3", "it's", "a""b9", U&"d!0061t" FROM "T1" WHERE "x1" = '1'`)).toBe(
      `SELECT "col 3", "it's", "a""b9", U&"d!0061t" FROM "T1" WHERE "x1" = ?`,
    );
  });

  it('replaces numbers: integers, decimals, exponents, underscores, hex, octal and binary', () => {
    expect(postgres('SELECT 42, 3.14, .5, 5., 1e10, 2.5E-3, 1_000_000, 0x1F, 0o17, 0b101')).toBe(
      'SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?',
    );
  });

  it('leaves the sign of a negative number, which PostgreSQL lexes as an operator', () => {
    expect(postgres('SELECT -42, a-1, a - -2.5 FROM t WHERE b=-7')).toBe(
      'SELECT -?, a-?, a - -? FROM t WHERE b=-?',
    );
  });

  it('keeps type names and casts, replacing the numbers in type modifiers', () => {
    expect(postgres(`SELECT '2024-01-01'::date, x::int4, y::numeric(10,2), arr[3] FROM t`)).toBe(
      'SELECT ?::date, x::int4, y::numeric(?,?), arr[?] FROM t',
    );
  });

  it('removes comments, nested ones too, without being misled by quotes in them', () => {
    expect(postgres(`SELECT 1 -- it's the user ada@example.com\nFROM t WHERE a = 'x'`)).toBe(
      'SELECT ? \nFROM t WHERE a = ?',
    );
    expect(postgres(`SELECT /* it's /* 42 */ still 'in' */ a FROM t`)).toBe('SELECT  a FROM t');
    expect(postgres('SELECT/*c*/a, b/* 7 */FROM t')).toBe('SELECT a, b FROM t');
    expect(postgres(`SELECT 'a -- not a comment', '/* nor this */' FROM t`)).toBe('SELECT ?, ? FROM t');
  });

  it('replaces an unterminated literal or comment through to the end', () => {
    expect(postgres(`SELECT * FROM t WHERE a = 'secret`)).toBe('SELECT * FROM t WHERE a = ?');
    expect(postgres('SELECT $$secret')).toBe('SELECT ?');
    expect(postgres('SELECT a /* secret')).toBe('SELECT a ');
  });

  it('returns text without literals unchanged', () => {
    const sql = 'SELECT "id", "status" FROM "Job" WHERE "id" = $1 AND "status" IN ($2,$3)';
    expect(postgres(sql)).toBe(sql);
    expect(postgres('')).toBe('');
  });

  it('lexes an unknown system as PostgreSQL', () => {
    expect(sanitizeQueryText(`SELECT $$x$$, 'y', 3`, 'other_sql')).toBe('SELECT ?, ?, ?');
  });
});

describe('sanitizeQueryText on other databases', () => {
  it('MySQL: double-quoted strings, backslash escapes, backtick identifiers, # comments', () => {
    expect(
      sanitizeQueryText(
        'SELECT `t1`.`col 2` FROM t1 WHERE a = "it\\"s" AND b = \'x\\\'y\' AND c = ? # user 42',
        'mysql',
      ),
    ).toBe('SELECT `t1`.`col 2` FROM t1 WHERE a = ? AND b = ? AND c = ? ');
    expect(sanitizeQueryText(String.raw`SELECT 'C:\\', 'secret'`, 'mariadb')).toBe('SELECT ?, ?');
  });

  it('SQLite: bracketed identifiers, ? and $name parameters, blobs', () => {
    expect(
      sanitizeQueryText(
        `SELECT [col 1], "c2" FROM t WHERE a = ?1 AND b = ? AND c = $name AND d = X'0A' AND e = 9`,
        'sqlite',
      ),
    ).toBe(`SELECT [col 1], "c2" FROM t WHERE a = ?1 AND b = ? AND c = $name AND d = ? AND e = ?`);
  });

  it('SQL Server: national strings, @P parameters and bracketed identifiers', () => {
    expect(
      sanitizeQueryText(
        `SELECT [order 1] FROM t WHERE a = @P1 AND b = N'secret' AND c = 0x1F`,
        'microsoft.sql_server',
      ),
    ).toBe('SELECT [order 1] FROM t WHERE a = @P1 AND b = ? AND c = ?');
  });
});
