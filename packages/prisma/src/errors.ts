/**
 * What a failed operation may tell its span and logs. Prisma's messages end in the database's own
 * message, which quotes rejected values (PostgreSQL's 22P02 `invalid input syntax for type uuid:
 * "..."` becomes P2007 `Invalid input value: ...`; a raw query's error becomes P2010 `Raw query
 * failed. Code: ... Message: ...`); and the stack trace starts with that message. So by default
 * only bounded facts leave: the code, the error class, the driver's status code and a fixed
 * description per code.
 */
import { ERROR_TYPE_VALUE_OTHER } from '@opentelemetry/semantic-conventions';

/** Error codes of the Prisma engines and query compiler (P1000, P2002...). */
const PRISMA_ERROR_CODE = /^P\d{4}$/;
/** Error classes whose names are a bounded set: anything else is `_OTHER`. */
const KNOWN_ERROR_NAME = /^(PrismaClient[A-Za-z]{1,40}Error|DriverAdapterError)$/;
/** A database's own error code: SQLSTATE (`22P02`), a MySQL or SQL Server number, `SQLITE_...`. */
const DRIVER_STATUS_CODE = /^[A-Za-z0-9_]{1,40}$/;

/**
 * A description of each Prisma error code, fixed text that never holds a value, a name or a
 * field from the failed query: what the span says about the error unless `includeArgs` is on.
 */
const DESCRIPTIONS: ReadonlyMap<string, string> = new Map([
  ['P1000', 'Authentication failed against the database server'],
  ['P1001', "Can't reach database server"],
  ['P1002', 'The database server was reached but timed out'],
  ['P1003', 'Database does not exist'],
  ['P1008', 'Operations timed out'],
  ['P1009', 'Database already exists on the database server'],
  ['P1010', 'User was denied access on the database'],
  ['P1011', 'Error opening a TLS connection'],
  ['P1017', 'Server has closed the connection'],
  ['P1018', 'Transaction already closed'],
  ['P2000', "The provided value for the column is too long for the column's type"],
  ['P2001', 'The record searched for in the where condition does not exist'],
  ['P2002', 'Unique constraint failed'],
  ['P2003', 'Foreign key constraint failed'],
  ['P2004', 'A constraint failed on the database'],
  ['P2005', "The value stored in the database is invalid for the field's type"],
  ['P2006', 'The provided value for the field is not valid'],
  ['P2007', 'Data validation error'],
  ['P2008', 'Failed to parse the query'],
  ['P2009', 'Failed to validate the query'],
  ['P2010', 'Raw query failed'],
  ['P2011', 'Null constraint violation'],
  ['P2012', 'Missing a required value'],
  ['P2013', 'Missing a required argument'],
  ['P2014', 'The change would violate a required relation'],
  ['P2015', 'A related record could not be found'],
  ['P2016', 'Query interpretation error'],
  ['P2017', 'The records for a relation are not connected'],
  ['P2018', 'The required connected records were not found'],
  ['P2019', 'Input error'],
  ['P2020', 'Value out of range for the type'],
  ['P2021', 'The table does not exist in the current database'],
  ['P2022', 'The column does not exist in the current database'],
  ['P2023', 'Inconsistent column data'],
  ['P2024', 'Timed out fetching a new connection from the connection pool'],
  ['P2025', 'An operation failed because it depends on one or more records that were required but not found'],
  ['P2026', "The current database provider doesn't support a feature that the query used"],
  ['P2027', 'Multiple errors occurred on the database during query execution'],
  ['P2028', 'Transaction API error'],
  ['P2029', 'Query parameter limit exceeded'],
  ['P2030', 'Cannot find a fulltext index to use for the search'],
  ['P2031', 'Transactions need the MongoDB server to run as a replica set'],
  ['P2033', 'A number used in the query does not fit into a 64 bit signed integer'],
  ['P2034', 'Transaction failed due to a write conflict or a deadlock'],
  ['P2035', 'Assertion violation on the database'],
  ['P2036', 'Error in external connector'],
  ['P2037', 'Too many database connections opened'],
  ['P2039', 'Database error'],
]);

/** `error.type`: the Prisma error code, else a known error class, else `_OTHER`. */
export function errorTypeOf(error: unknown): string {
  if (typeof error !== 'object' || error === null) return ERROR_TYPE_VALUE_OTHER;
  const { code, name } = error as { code?: unknown; name?: unknown };
  if (typeof code === 'string' && PRISMA_ERROR_CODE.test(code)) return code;
  if (typeof name === 'string' && KNOWN_ERROR_NAME.test(name)) return name;
  return ERROR_TYPE_VALUE_OTHER;
}

/** The fixed description of a Prisma error code, or undefined for anything else. */
export function errorDescription(errorType: string): string | undefined {
  return DESCRIPTIONS.get(errorType);
}

/**
 * The database's own error code (PostgreSQL's SQLSTATE `22P02`...) that a driver adapter
 * reported, from a Prisma error's `meta.driverAdapterError` or a bare `DriverAdapterError`.
 */
export function driverStatusCodeOf(error: unknown): string | undefined {
  try {
    if (typeof error !== 'object' || error === null) return undefined;
    const adapterError =
      (error as { meta?: { driverAdapterError?: unknown } }).meta?.driverAdapterError ?? error;
    const code = (adapterError as { cause?: { originalCode?: unknown } } | null)?.cause?.originalCode;
    if (typeof code === 'number' && Number.isSafeInteger(code)) return String(code);
    return typeof code === 'string' && DRIVER_STATUS_CODE.test(code) ? code : undefined;
  } catch {
    // A getter that throws: no code.
    return undefined;
  }
}

/**
 * The last line of a Prisma error message. Prisma prefixes it with the caller's source lines
 * (a code frame), which can hold literal values, so only the summary is kept.
 */
export function errorSummary(message: string): string {
  const trimmed = message.trimEnd();
  return trimmed.slice(trimmed.lastIndexOf('\n') + 1);
}

const FRAME = '\n    at ';

/**
 * The `at ...` frames of an error's stack, without the `Name: message` header that starts it.
 * The header is skipped whole, even when the message itself has lines that look like frames (a
 * value can); when the stack does not hold the message (changed after the stack was captured),
 * there is no telling where the header ends, and no frames are returned.
 */
export function stackFrames(error: Error): string | undefined {
  const { stack, message } = error;
  if (typeof stack !== 'string' || typeof message !== 'string') return undefined;
  let headerEnd = 0;
  if (message !== '') {
    const header = `: ${message}\n`;
    const at = stack.indexOf(header);
    if (at === -1) return undefined;
    headerEnd = at + header.length - 1;
  }
  const start = stack.indexOf(FRAME, headerEnd);
  return start === -1 ? undefined : stack.slice(start + 1);
}
