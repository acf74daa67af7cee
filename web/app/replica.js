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
    this.ready = loadSqlJs();
  }

  async load(bytes) {
    const SQL = await this.ready;
    this.db?.close();
    this.db = new SQL.Database(bytes);
    this.db.run("PRAGMA query_only = ON");
    this.bytes = bytes;
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

  tables() {
    if (!this.db) return [];
    return this.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").map(
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

// --- the table browser -------------------------------------------------------------------

const PAGE_ROWS = 100;

export class TableBrowser {
  constructor(root, replica) {
    this.root = root;
    this.replica = replica;
    this.selected = null;
    this.list = root.querySelector("[data-tables]");
    this.view = root.querySelector("[data-rows]");
    this.caption = root.querySelector("[data-caption]");
  }

  render() {
    const tables = this.replica.tables();
    if (!tables.some((t) => t.name === this.selected)) this.selected = tables[0]?.name ?? null;
    this.list.replaceChildren(
      ...tables.map(({ name, count }) => {
        const button = el("button", { class: "table-tab", type: "button", "aria-pressed": String(name === this.selected) });
        button.append(el("span", {}, name), el("span", { class: "count" }, count.toLocaleString()));
        button.addEventListener("click", () => {
          this.selected = name;
          this.render();
        });
        return button;
      }),
    );
    this.renderRows(tables.find((t) => t.name === this.selected));
  }

  renderRows(table) {
    if (!table) {
      this.caption.textContent = "No tables yet.";
      this.view.replaceChildren();
      return;
    }
    const quoted = `"${table.name.replaceAll('"', '""')}"`;
    const result = this.replica.db.exec(`SELECT * FROM ${quoted} LIMIT ${PAGE_ROWS}`)[0];
    const columns = result?.columns ?? this.replica.query(`PRAGMA table_info(${quoted})`).map((c) => c.name);
    const head = el("tr", {}, ...columns.map((c) => el("th", { scope: "col" }, c)));
    const body = (result?.values ?? []).map((row) =>
      el("tr", {}, ...row.map((value) => el("td", value === null ? { class: "null" } : {}, value === null ? "null" : formatCell(value)))),
    );
    this.view.replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
    const shown = Math.min(table.count, PAGE_ROWS);
    this.caption.textContent =
      table.count > PAGE_ROWS ? `${table.name}: first ${shown} of ${table.count.toLocaleString()} rows` : `${table.name}: ${table.count} rows`;
  }
}

function shorten(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

function formatCell(value) {
  if (value instanceof Uint8Array) return `‹${value.length} bytes›`;
  return String(value);
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}
