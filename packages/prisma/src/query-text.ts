/**
 * Sanitising of raw SQL for `db.query.text`, as OpenTelemetry's database conventions ask of text
 * that is not fully parameterised: every string and numeric literal becomes `?`, placeholders
 * (`$1`, `?`, `?1`, `@P1`) and identifiers stay. Comments are removed, since they can quote values
 * as freely as literals do.
 *
 * The lexing follows the database's own rules where they differ: a literal that a wrong rule
 * closed too early would let its tail through as if it were SQL.
 */

interface SqlDialect {
  /** `"..."` is a string literal (MySQL, MariaDB) rather than a quoted identifier. */
  readonly doubleQuotedStrings: boolean;
  /** A backslash escapes the next character in every string (MySQL, MariaDB), not only in `E'...'`. */
  readonly backslashEscapes: boolean;
  /** `$$...$$` and `$tag$...$tag$` are strings (PostgreSQL, CockroachDB). */
  readonly dollarQuotes: boolean;
  /** `[...]` quotes an identifier (SQL Server, SQLite) rather than subscripting an array. */
  readonly bracketIdentifiers: boolean;
  /** `#` starts a comment (MySQL, MariaDB). */
  readonly hashComments: boolean;
}

const POSTGRESQL: SqlDialect = {
  doubleQuotedStrings: false,
  backslashEscapes: false,
  dollarQuotes: true,
  bracketIdentifiers: false,
  hashComments: false,
};
const MYSQL: SqlDialect = {
  doubleQuotedStrings: true,
  backslashEscapes: true,
  dollarQuotes: false,
  bracketIdentifiers: false,
  hashComments: true,
};
const BRACKETED: SqlDialect = { ...POSTGRESQL, dollarQuotes: false, bracketIdentifiers: true };

// Anything else (other_sql, a custom dbSystemName) is lexed as PostgreSQL, whose rules are the
// SQL standard's plus dollar quotes.
const DIALECTS: ReadonlyMap<string, SqlDialect> = new Map([
  ['mysql', MYSQL],
  ['mariadb', MYSQL],
  ['sqlite', BRACKETED],
  ['microsoft.sql_server', BRACKETED],
]);

const PLACEHOLDER = '?';
const SINGLE_QUOTE = 0x27;
const DOUBLE_QUOTE = 0x22;
const BACKTICK = 0x60;
const BACKSLASH = 0x5c;
const DOLLAR = 0x24;
const QUESTION_MARK = 0x3f;
const OPEN_BRACKET = 0x5b;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const HASH = 0x23;
const DOT = 0x2e;
const AMPERSAND = 0x26;

const NUMBER =
  /0[xX][0-9A-Fa-f_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?/y;
const DOLLAR_QUOTE_TAG = /\$(?:[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/y;
const WHITESPACE = /\s/;

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function isIdentifierStart(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || code === 0x5f || code >= 0x80;
}

function isIdentifierPart(code: number): boolean {
  return isIdentifierStart(code) || isDigit(code) || code === DOLLAR;
}

/** The index after the quote that closes the quoted text opened just before `from`; the end when unclosed. */
function endOfQuoted(sql: string, from: number, quote: number, backslashEscapes: boolean): number {
  for (let index = from; index < sql.length; index++) {
    const code = sql.charCodeAt(index);
    if (code === BACKSLASH && backslashEscapes) index++;
    else if (code === quote) {
      if (sql.charCodeAt(index + 1) !== quote) return index + 1;
      index++;
    }
  }
  return sql.length;
}

/** PostgreSQL's block comments nest; where they do not, the longer reading only removes more. */
function endOfBlockComment(sql: string, from: number): number {
  let depth = 1;
  for (let index = from; index < sql.length - 1; index++) {
    const code = sql.charCodeAt(index);
    const next = sql.charCodeAt(index + 1);
    if (code === SLASH && next === STAR) {
      depth++;
      index++;
    } else if (code === STAR && next === SLASH) {
      index++;
      if (--depth === 0) return index + 1;
    }
  }
  return sql.length;
}

function endOfLine(sql: string, from: number): number {
  const newline = sql.indexOf('\n', from);
  return newline === -1 ? sql.length : newline;
}

/** The length of a string-literal prefix at `index` (`E'`, `N'`, `B'`, `X'`, `U&'`), 0 if none. */
function stringPrefixLength(sql: string, index: number): number {
  const letter = sql.charCodeAt(index) | 0x20;
  const next = sql.charCodeAt(index + 1);
  if (next === SINGLE_QUOTE) {
    // e, n, b, x
    return letter === 0x65 || letter === 0x6e || letter === 0x62 || letter === 0x78 ? 1 : 0;
  }
  return letter === 0x75 && next === AMPERSAND && sql.charCodeAt(index + 2) === SINGLE_QUOTE ? 2 : 0;
}

/**
 * `sql` with its literals replaced by `?` and its comments removed, lexed by the rules of
 * `dbSystemName` (PostgreSQL's for a system it does not know).
 */
export function sanitizeQueryText(sql: string, dbSystemName: string): string {
  const dialect = DIALECTS.get(dbSystemName) ?? POSTGRESQL;
  let sanitized = '';
  let copiedUpTo = 0;
  let index = 0;

  function replace(start: number, end: number, replacement: string): void {
    sanitized += sql.slice(copiedUpTo, start) + replacement;
    copiedUpTo = end;
    index = end;
  }

  /** Removes a comment, keeping a space where the words on either side would otherwise touch. */
  function removeComment(start: number, end: number): void {
    const before = sql[start - 1];
    const after = sql[end];
    const separate =
      before !== undefined && after !== undefined && !WHITESPACE.test(before) && !WHITESPACE.test(after);
    replace(start, end, separate ? ' ' : '');
  }

  while (index < sql.length) {
    const code = sql.charCodeAt(index);
    const next = sql.charCodeAt(index + 1);
    if (code === SINGLE_QUOTE) {
      replace(index, endOfQuoted(sql, index + 1, SINGLE_QUOTE, dialect.backslashEscapes), PLACEHOLDER);
    } else if (isIdentifierStart(code)) {
      const prefix = stringPrefixLength(sql, index);
      if (prefix > 0) {
        // E'...' is PostgreSQL's escape string: a backslash escapes the quote there.
        const backslashEscapes = dialect.backslashEscapes || (code | 0x20) === 0x65;
        replace(index, endOfQuoted(sql, index + prefix + 1, SINGLE_QUOTE, backslashEscapes), PLACEHOLDER);
      } else if ((code | 0x20) === 0x75 && next === AMPERSAND && sql.charCodeAt(index + 2) === DOUBLE_QUOTE) {
        index = endOfQuoted(sql, index + 3, DOUBLE_QUOTE, false);
      } else {
        // A whole identifier at once: the digits of `t1` or `col2` are not numbers.
        index++;
        while (index < sql.length && isIdentifierPart(sql.charCodeAt(index))) index++;
      }
    } else if (code === DOUBLE_QUOTE) {
      if (dialect.doubleQuotedStrings) {
        replace(index, endOfQuoted(sql, index + 1, DOUBLE_QUOTE, dialect.backslashEscapes), PLACEHOLDER);
      } else {
        index = endOfQuoted(sql, index + 1, DOUBLE_QUOTE, false);
      }
    } else if (code === BACKTICK) {
      index = endOfQuoted(sql, index + 1, BACKTICK, false);
    } else if (code === OPEN_BRACKET && dialect.bracketIdentifiers) {
      const close = sql.indexOf(']', index + 1);
      index = close === -1 ? sql.length : close + 1;
    } else if ((code === DASH && next === DASH) || (code === HASH && dialect.hashComments)) {
      removeComment(index, endOfLine(sql, index));
    } else if (code === SLASH && next === STAR) {
      removeComment(index, endOfBlockComment(sql, index + 2));
    } else if (code === DOLLAR || code === QUESTION_MARK) {
      // `$1`, `?` and `?1` are placeholders.
      index++;
      if (isDigit(next)) {
        while (index < sql.length && isDigit(sql.charCodeAt(index))) index++;
      } else if (code === DOLLAR && dialect.dollarQuotes) {
        DOLLAR_QUOTE_TAG.lastIndex = index - 1;
        const tag = DOLLAR_QUOTE_TAG.exec(sql)?.[0];
        if (tag !== undefined) {
          const close = sql.indexOf(tag, index - 1 + tag.length);
          replace(index - 1, close === -1 ? sql.length : close + tag.length, PLACEHOLDER);
        }
      }
    } else if (isDigit(code) || (code === DOT && isDigit(next))) {
      NUMBER.lastIndex = index;
      NUMBER.exec(sql);
      replace(index, NUMBER.lastIndex, PLACEHOLDER);
    } else {
      index++;
    }
  }
  return copiedUpTo === 0 ? sql : sanitized + sql.slice(copiedUpTo);
}
