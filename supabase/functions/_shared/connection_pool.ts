// The functions' connection pool: connections handed out last-in, first-out.
import postgres from "postgres";

type Sql = postgres.Sql;

/**
 * Up to `max` connections, each a postgres.js client of its own with one connection, handed out
 * last-in, first-out. postgres.js's own pool takes the connection idle longest (first-in,
 * first-out), so a quiet function cycles through every connection a burst opened and each request
 * meets a backend whose caches went cold meanwhile: createJob one at a time was 14 % slower on 8
 * open connections than on one (docs/performance.md, finding 23). Last-in, first-out keeps a quiet
 * function on its warmest connection and lets the others close after their idle timeout, as
 * PgBouncer and node-postgres do by default. A request that finds every connection busy waits for
 * the first one freed, in arrival order.
 */
export class ConnectionPool {
  readonly #max: number;
  readonly #connect: () => Sql;
  readonly #all: Sql[] = [];
  readonly #idle: Sql[] = [];
  readonly #waiting: { resolve(sql: Sql): void; reject(error: Error): void }[] = [];
  #ended = false;

  constructor(max: number, connect: () => Sql) {
    this.#max = Math.max(1, max);
    this.#connect = connect;
  }

  /** Runs `operation` on one connection of its own, given back when it settles. */
  async use<T>(operation: (sql: Sql) => Promise<T>): Promise<T> {
    const sql = await this.#acquire();
    let failure: unknown;
    try {
      return await operation(sql);
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      this.#release(sql, failure);
    }
  }

  /** Closes every connection; waits up to `timeoutS` for running queries. */
  async end(timeoutS = 5): Promise<void> {
    this.#ended = true;
    this.#idle.length = 0;
    for (const waiter of this.#waiting.splice(0)) {
      waiter.reject(Object.assign(new Error("the pool was closed"), { code: "CONNECTION_ENDED" }));
    }
    await Promise.all(this.#all.splice(0).map((sql) => sql.end({ timeout: timeoutS })));
  }

  #acquire(): Sql | Promise<Sql> {
    const warmest = this.#idle.pop();
    if (warmest) return warmest;
    if (this.#all.length < this.#max) return this.#open();
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  #open(): Sql {
    const sql = this.#connect();
    this.#all.push(sql);
    return sql;
  }

  /**
   * After a lost connection the client is closed, with every idle one: postgres.js keeps a killed
   * connection's termination notice and fails the next query on that client with it (last-in,
   * first-out would hand it to the very next request); and connections are mostly lost together
   * (a restart or failover of the database), so that every idle one kept would cost a later
   * request a 503.
   */
  #release(sql: Sql, failure: unknown): void {
    if (failure !== undefined && isLostConnection(failure)) {
      for (const lost of [sql, ...this.#idle.splice(0)]) {
        this.#all.splice(this.#all.indexOf(lost), 1);
        lost.end({ timeout: 0 }).catch(() => {});
      }
      if (this.#waiting.length === 0 || this.#ended) return;
      sql = this.#open();
    }
    const next = this.#waiting.shift();
    if (next) next.resolve(sql);
    else if (!this.#ended) this.#idle.push(sql);
  }
}

function isLostConnection(error: unknown): boolean {
  if (error instanceof postgres.PostgresError) {
    return error.code.startsWith("08") || error.code.startsWith("57P");
  }
  return isConnectionError(error);
}

/** An error of the connection itself (refused, reset, timed out, closed), not of a statement. */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && /^(E[A-Z]+|CONNECTION_[A-Z_]+|CONNECT_TIMEOUT)$/.test(code)) {
    return true;
  }
  return error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.TimedOut;
}
