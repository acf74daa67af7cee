// The page's read replica of the database, in sql.js.
//
// The worker is the only writer: after each committed step it posts the file,
// and the replica reopens it. The replica serves the table browser, the
// .sqlite download, checks of files before import, and db.query(sql) for host
// pages and tests. It is opened read-only so a query cannot drift from Python.

const SQLITE_MAGIC = "SQLite format 3\0";
let sqlJs = null;

function loadSqlJs() {
  // sql-wasm.js is a classic script (loaded by index.html) that defines initSqlJs.
  sqlJs ??= globalThis.initSqlJs({ locateFile: (file) => new URL(`sqljs/${file}`, document.baseURI).href });
  return sqlJs;
}

export class Replica {
  constructor() {
    this.db = null;
    this.bytes = null;
    this.version = 0; // counts loads, so readers know when cached answers are stale
    this.indexes = new Map(); // [table, columns] -> whether this copy has the index (see sortIndex)
    this.ready = loadSqlJs();
  }

  async load(bytes) {
    const SQL = await this.ready;
    this.db?.close();
    this.db = new SQL.Database(bytes);
    this.db.run("PRAGMA query_only = ON");
    this.bytes = bytes;
    this.version += 1;
    this.indexes = new Map();
  }

  /**
   * An index on `table` (`columns`), so the table browser reads a deep page of a sorted
   * table from it instead of sorting every row. It exists in this in-memory copy only: not
   * in `bytes` (the download and checks use those), not in Python's database, and gone at
   * the next load, which starts again from Python's file. Building it is one sort, the same
   * work as one sorted query, and every later page of that order costs a few rows. Returns
   * false when SQLite refuses (a virtual table, say): the caller then sorts without it.
   */
  sortIndex(table, columns) {
    if (!this.db) return false;
    const key = JSON.stringify([table, columns]);
    if (!this.indexes.has(key)) {
      const name = `py_agent_replica_sort_${this.version}_${this.indexes.size}`;
      let made = true;
      // SQLite sorts within cache_size before spilling to a temp file: room for the whole sort.
      const [[cache]] = this.values("PRAGMA cache_size");
      this.db.run("PRAGMA query_only = OFF");
      this.db.run("PRAGMA cache_size = -65536");
      try {
        this.db.run(`CREATE INDEX IF NOT EXISTS ${quote(name)} ON ${quote(table)} (${columns.map(quote).join(", ")})`);
      } catch {
        made = false;
      } finally {
        this.db.run(`PRAGMA cache_size = ${Number(cache)}`);
        this.db.run("PRAGMA query_only = ON");
      }
      this.indexes.set(key, made);
    }
    return this.indexes.get(key);
  }

  /** Rows of `sql` as plain objects. Throws with SQLite's message on error. */
  query(sql, params = []) {
    if (!this.db) throw new Error("the database has not been loaded yet (await pyAgent.ready)");
    const statement = this.db.prepare(sql);
    try {
      statement.bind(params);
      const rows = [];
      while (statement.step()) rows.push(statement.getAsObject());
      return rows;
    } finally {
      statement.free();
    }
  }

  /** Rows of `sql` as arrays (cheaper than objects for pages of a table). */
  values(sql, params = []) {
    if (!this.db) throw new Error("the database has not been loaded yet (await pyAgent.ready)");
    const statement = this.db.prepare(sql);
    try {
      statement.bind(params);
      const rows = [];
      while (statement.step()) rows.push(statement.get());
      return rows;
    } finally {
      statement.free();
    }
  }

  /** The person's tables with their row counts (not SQLite's or py-agent's own bookkeeping). */
  tables() {
    if (!this.db) return [];
    const sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'py\\_agent\\_%' ESCAPE '\\' ORDER BY name";
    return this.query(sql).map(
      ({ name }) => ({ name, count: this.query(`SELECT count(*) AS n FROM "${name.replaceAll('"', '""')}"`)[0].n }),
    );
  }

  /** Problems that make `bytes` unfit to import; an empty list when it is a healthy SQLite file. */
  async check(bytes) {
    const header = new TextDecoder("latin1").decode(bytes.subarray(0, 16));
    if (header !== SQLITE_MAGIC) return ["it is not an SQLite database (the file does not start with “SQLite format 3”)"];
    const SQL = await this.ready;
    let db;
    try {
      db = new SQL.Database(bytes);
      const rows = db.exec("PRAGMA integrity_check(3)")[0]?.values.map((row) => String(row[0])) ?? [];
      if (rows.length === 1 && rows[0] === "ok") return [];
      // Name the first real problem, cut short: a wrecked file can report thousands.
      const lines = rows.flatMap((row) => row.split("\n")).filter((line) => line && !line.startsWith("***"));
      return [`its integrity check failed (${shorten(lines[0] ?? rows[0] ?? "no details", 120)})`];
    } catch (error) {
      return [`SQLite cannot read it: ${error.message}`];
    } finally {
      db?.close();
    }
  }
}

function quote(name) {
  return `"${String(name).replaceAll('"', '""')}"`;
}

function shorten(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}
