/**
 * Checks SQL text before it is accepted, with a small SQLite lexer (strings,
 * quoted identifiers, comments and blobs are skipped, so a keyword inside a
 * literal never matches).
 *
 * Writes (`/db/execute`) become log entries that every replica replays, so a
 * write may not depend on anything outside the entry:
 *   - time and randomness are made deterministic by the state machine (the
 *     entry carries its timestamp and random seed), so they are allowed;
 *   - ATTACH / DETACH (other database files), connection-level PRAGMAs (lost on
 *     snapshot restore) and total_changes() (connection history) are rejected.
 * Reads (`/db/query`) must be read-only statements: SELECT, WITH, VALUES,
 * EXPLAIN or a PRAGMA without an assignment. The state machine also runs reads
 * with `PRAGMA query_only` as a second line of defence.
 */
import { GandalfError } from '../core/errors';

export type TokenKind = 'word' | 'string' | 'ident' | 'number' | 'blob' | 'param' | 'punct';
export interface Token {
  kind: TokenKind;
  text: string;
}

/** PRAGMAs that live in the database file itself and therefore replicate. */
const PERSISTENT_PRAGMAS = new Set(['user_version', 'application_id']);
const READ_KEYWORDS = new Set(['SELECT', 'WITH', 'VALUES', 'EXPLAIN', 'PRAGMA']);
const WRITE_REJECTED_KEYWORDS = new Set(['ATTACH', 'DETACH']);
const WRITE_REJECTED_FUNCTIONS = new Set(['total_changes', 'load_extension']);

export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === "'" || c === '"' || c === '`') {
      const end = scanQuoted(sql, i, c);
      tokens.push({ kind: c === "'" ? 'string' : 'ident', text: sql.slice(i, end) });
      i = end;
    } else if (c === '[') {
      const end = sql.indexOf(']', i);
      const stop = end < 0 ? n : end + 1;
      tokens.push({ kind: 'ident', text: sql.slice(i, stop) });
      i = stop;
    } else if ((c === 'x' || c === 'X') && sql[i + 1] === "'") {
      const end = scanQuoted(sql, i + 1, "'");
      tokens.push({ kind: 'blob', text: sql.slice(i, end) });
      i = end;
    } else if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[j]!)) j++;
      tokens.push({ kind: 'word', text: sql.slice(i, j) });
      i = j;
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
      let j = i + 1;
      while (j < n && /[0-9A-Za-z_.]/.test(sql[j]!)) j++;
      tokens.push({ kind: 'number', text: sql.slice(i, j) });
      i = j;
    } else if (c === '?' || c === ':' || c === '@' || c === '$') {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_]/.test(sql[j]!)) j++;
      tokens.push({ kind: 'param', text: sql.slice(i, j) });
      i = j;
    } else {
      tokens.push({ kind: 'punct', text: c });
      i++;
    }
  }
  return tokens;
}

function scanQuoted(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] === quote) i += 2;
      else return i + 1;
    } else i++;
  }
  return sql.length;
}

/** Splits tokens into statements at top-level semicolons (CREATE TRIGGER bodies are kept whole). */
export function splitStatements(tokens: Token[]): Token[][] {
  const out: Token[][] = [];
  let current: Token[] = [];
  let triggerDepth = 0;
  for (const t of tokens) {
    const upper = t.kind === 'word' ? t.text.toUpperCase() : '';
    if (current.length === 0 && t.kind === 'punct' && t.text === ';') continue;
    current.push(t);
    if (upper === 'TRIGGER' && current.length <= 4 && current[0]!.text.toUpperCase() === 'CREATE') triggerDepth = 1;
    else if (triggerDepth > 0 && upper === 'END') triggerDepth = 0;
    else if (triggerDepth === 0 && t.kind === 'punct' && t.text === ';') {
      current.pop();
      out.push(current);
      current = [];
    }
  }
  if (current.length > 0) out.push(current);
  return out;
}

function reject(message: string): never {
  throw new GandalfError('statement_rejected', message);
}

/** Throws `statement_rejected` if `sql` may not be written to the replicated log. */
export function checkWriteStatement(sql: string): void {
  const statements = splitStatements(tokenize(sql));
  if (statements.length === 0) reject('empty statement');
  for (const stmt of statements) {
    const first = stmt[0]!.text.toUpperCase();
    if (WRITE_REJECTED_KEYWORDS.has(first)) {
      reject(`${first} is not allowed: a replicated database cannot reach other database files`);
    }
    if (first === 'PRAGMA') {
      const name = pragmaName(stmt);
      const assigns = stmt.some((t) => t.kind === 'punct' && (t.text === '=' || t.text === '('));
      if (!assigns) reject(`PRAGMA ${name} reads state: send it to /db/query`);
      if (!PERSISTENT_PRAGMAS.has(name.toLowerCase())) {
        reject(`PRAGMA ${name} changes connection state that replicas and snapshots do not keep; ` + `only ${[...PERSISTENT_PRAGMAS].join(', ')} may be set`);
      }
    }
    for (let k = 0; k + 1 < stmt.length; k++) {
      const t = stmt[k]!;
      if (t.kind === 'word' && stmt[k + 1]!.text === '(' && WRITE_REJECTED_FUNCTIONS.has(t.text.toLowerCase())) {
        reject(`${t.text}() is not allowed in a write: its value differs between replicas`);
      }
    }
  }
}

/** Throws `statement_rejected` unless every statement in `sql` is read-only. */
export function checkReadStatement(sql: string): void {
  const statements = splitStatements(tokenize(sql));
  if (statements.length === 0) reject('empty statement');
  for (const stmt of statements) {
    const first = stmt[0]!.text.toUpperCase();
    if (!READ_KEYWORDS.has(first)) {
      reject(`${first} is not a read-only statement: send writes to /db/execute`);
    }
    if (first === 'WITH') {
      const verb = withMainVerb(stmt);
      if (verb !== 'SELECT' && verb !== 'VALUES') reject(`WITH … ${verb ?? '(no statement)'} is not a read-only statement: send writes to /db/execute`);
    }
    if (first === 'PRAGMA' && stmt.some((t) => t.kind === 'punct' && t.text === '=')) {
      reject('PRAGMA assignments are not allowed in a query');
    }
  }
}

/** Whether `sql` passes checkReadStatement (what the CLI and /db/request send down the read path). */
export function isReadStatement(sql: string): boolean {
  try {
    checkReadStatement(sql);
    return true;
  } catch {
    return false;
  }
}

const WITH_MAIN_VERBS = new Set(['SELECT', 'VALUES', 'INSERT', 'UPDATE', 'DELETE', 'REPLACE']);

/** The statement a `WITH` clause introduces: the first of its verbs outside the parenthesised common table expressions. */
function withMainVerb(stmt: Token[]): string | undefined {
  let depth = 0;
  for (const t of stmt.slice(1)) {
    if (t.kind === 'punct' && t.text === '(') depth++;
    else if (t.kind === 'punct' && t.text === ')') depth--;
    else if (depth === 0 && t.kind === 'word' && WITH_MAIN_VERBS.has(t.text.toUpperCase())) return t.text.toUpperCase();
  }
  return undefined;
}

function pragmaName(stmt: Token[]): string {
  // PRAGMA [schema.]name ...
  const a = stmt[1]?.text ?? '';
  if (stmt[2]?.text === '.') return stmt[3]?.text ?? '';
  return a;
}

/** Functions whose cost is small and bounded by their arguments' size (randomblob: see MAX_RANDOMBLOB). */
const CHEAP_FUNCTIONS = new Set(
  (
    'abs coalesce ifnull nullif iif length octet_length lower upper trim ltrim rtrim substr substring instr round min max typeof hex ' +
    'quote unicode char sign likely unlikely changes last_insert_rowid random randomblob date time datetime julianday unixepoch strftime ' +
    'json json_extract json_object json_array json_valid json_type json_quote'
  ).split(' '),
);
/** Words before a parenthesis that are not function calls (keywords, or a table name before its column list). */
const NOT_CALLS = new Set(
  'VALUES IN EXISTS AS USING KEY CHECK UNIQUE REFERENCES ON CAST DEFAULT PRIMARY FOREIGN CONSTRAINT COLLATE OVER FILTER WHERE AND OR NOT SET RETURNING THEN ELSE WHEN CASE IS CONFLICT'.split(
    ' ',
  ),
);
const BEFORE_TABLE = new Set(['INTO', 'TABLE', 'INDEX', 'VIEW', 'TRIGGER', 'REFERENCES', 'ON', 'JOIN', 'FROM', 'UPDATE', 'EXISTS']);

/**
 * Whether a write could take long to apply: it holds a query (SELECT, WITH:
 * scans, joins, recursive CTEs) or calls a function outside a short list of
 * cheap ones (zeroblob, printf and the like can build a gigabyte). Such a
 * write is tried on the leader, bounded by --query-timeout, before it enters
 * the log (so is every write once the schema has triggers).
 */
export function mayRunLong(sql: string): boolean {
  const tokens = tokenize(sql);
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k]!;
    if (t.kind !== 'word') continue;
    const upper = t.text.toUpperCase();
    if (upper === 'SELECT' || upper === 'WITH') return true;
    if (tokens[k + 1]?.text !== '(' || NOT_CALLS.has(upper) || CHEAP_FUNCTIONS.has(t.text.toLowerCase())) continue;
    const before = tokens[k - 1];
    if (before?.kind === 'word' && BEFORE_TABLE.has(before.text.toUpperCase())) continue;
    return true;
  }
  return false;
}

/** Whether every statement of `sql` can only make a database smaller: DELETE, DROP, VACUUM (what a full database still takes). */
export function onlyShrinks(sql: string): boolean {
  const statements = splitStatements(tokenize(sql));
  return statements.length > 0 && statements.every((st) => /^(DELETE|DROP|VACUUM)$/i.test(st[0]?.text ?? ''));
}
