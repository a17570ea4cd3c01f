// A bound on how long an RPC waits for one database statement. A database that accepts
// connections but does not answer (a stopped or hung server process, a lock held by a stuck
// session, a pool whose connections all wait on it) would otherwise hold the call until the
// client's deadline, or for ever without one; the connect timeout does not help once a
// connection is open. Inside `withStatementDeadline`, a statement (or a whole transaction)
// without an answer in time fails with STATEMENT_TIMEOUT, which the wire answers UNAVAILABLE
// (retry later), and is cancelled: a queued one leaves the queue, a running one gets a cancel
// request (best effort: a hung server reads it only when it wakes up).
//
// Work outside an RPC (runners, sweeps, migrations, the notifier) is not bounded here: its
// statements may wait on purpose (advisory locks), and its own loops retry what fails.
import { AsyncLocalStorage } from "node:async_hooks";

/** The `code` of the error a statement past its deadline fails with (isDatabaseUnavailable knows it). */
export const STATEMENT_TIMEOUT = "AGENTD_STATEMENT_TIMEOUT";

const budget = new AsyncLocalStorage<number>();

/** Runs `fn` with every database statement it makes (through the pool's `sql`) bounded by `ms`; 0: unbounded. */
export function withStatementDeadline<T>(ms: number, fn: () => T): T {
  return ms > 0 ? budget.run(ms, fn) : fn();
}

function timeoutError(ms: number): Error {
  return Object.assign(new Error(`the database did not answer within ${ms} ms`), { code: STATEMENT_TIMEOUT });
}

/** What postgres.js's Query (a lazy Promise) offers: it runs when first awaited. */
interface Statement {
  then: (...args: unknown[]) => unknown;
  reject(error: unknown): void;
  /** postgres.js's cancel function for this query; its promise says whether the cancel request got out. */
  canceller: ((query: Statement) => Promise<unknown>) | null;
}

function isStatement(value: unknown): value is Statement {
  if (!(value instanceof Promise)) return false;
  const v = value as unknown as Partial<Statement>;
  return typeof v.reject === "function" && "canceller" in v;
}

/** Arms the deadline when `query` is first awaited (a query used as a fragment of another is never awaited). */
export function boundStatement<T>(query: T): T {
  const ms = budget.getStore();
  if (ms === undefined || !isStatement(query)) return query;
  const statement = query as Statement;
  const then = statement.then;
  let armed = false;
  const hooked = function (this: Statement, ...args: unknown[]) {
    if (!armed) {
      armed = true;
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        // Rejected first: cancelling a queued query rejects it with a generic "canceled" error.
        statement.reject(timeoutError(ms));
        const cancel = statement.canceller;
        statement.canceller = null;
        cancel?.(statement).catch(() => {});
      }, ms);
      const done = () => {
        settled = true;
        clearTimeout(timer);
      };
      then.call(statement, done, done);
    }
    return then.apply(this, args);
  };
  // postgres.js sends a query when it is first awaited: that is when its clock starts.
  // biome-ignore lint/suspicious/noThenProperty: hooking the query's own `then` is the point
  Object.defineProperty(statement, "then", { value: hooked, configurable: true, writable: true });
  return query;
}

/** A transaction (`sql.begin`) bounded as a whole: the call answers in time, the transaction ends when it can. */
export function boundTransaction<T>(transaction: Promise<T>): Promise<T> {
  const ms = budget.getStore();
  if (ms === undefined) return transaction;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timeoutError(ms)), ms);
    transaction.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
