// The table browser: every table of the sql.js replica, paged, sorted and filtered by
// SQL (LIMIT/OFFSET/ORDER BY/WHERE), so a table of any size costs one page of rows.
//
// Values are shown as a person reads them: enum members by their label (from the
// `ready` event's `enums`), Numeric(p, 2) columns as money, foreign keys with the
// related row's name. Rows changed by the last request are highlighted, and rows of a
// step waiting for approval are shown before they exist. py-agent's own bookkeeping
// tables (py_agent_*) are hidden.

import { cellText, el, Grid } from "./grid.js";

const PAGE_ROWS = 50;
// Sorted pages this close to either end of a table come from one LIMIT query; deeper ones
// from the cached order (see SqlSource.page).
const TOP_N = 2000;
// A text column with one of these names is the best label of a row.
const LABEL_NAMES = ["name", "title", "label", "email", "code"];
const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });

export const quote = (name) => `"${String(name).replaceAll('"', '""')}"`;
const isText = (type) => /CHAR|CLOB|TEXT|STRING/i.test(type);
/** Numeric(p, 2) / Decimal(p, 2): the columns a schema uses for money. */
export const isMoney = (type) => /^(NUMERIC|DECIMAL)\s*\(\s*\d+\s*,\s*2\s*\)/i.test(type);
export const formatMoney = (value) => money.format(Number(value));

/** What the replica's schema says about one table. */
export function describeTable(replica, name, enums = {}) {
  const columns = replica.query(`PRAGMA table_info(${quote(name)})`).map((c) => ({ name: c.name, type: c.type || "", pk: c.pk }));
  const pk = columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name);
  const fks = new Map();
  for (const fk of replica.query(`PRAGMA foreign_key_list(${quote(name)})`)) {
    // A composite foreign key is shown as its plain values.
    if (fk.seq > 0 || fks.has(fk.from)) continue;
    const to = fk.to ?? primaryKey(replica, fk.table)[0];
    fks.set(fk.from, { table: fk.table, to, label: labelColumn(replica, fk.table, enums[fk.table] ?? {}) });
  }
  return { name, columns, pk, fks, enums: enums[name] ?? {} };
}

function primaryKey(replica, table) {
  return replica.query(`PRAGMA table_info(${quote(table)})`).filter((c) => c.pk > 0).map((c) => c.name);
}

/** The column that names a row of `table`: a text column called name/title/…, else the first text column. */
function labelColumn(replica, table, enums) {
  const info = replica.query(`PRAGMA table_info(${quote(table)})`);
  const foreign = new Set(replica.query(`PRAGMA foreign_key_list(${quote(table)})`).map((fk) => fk.from));
  const text = info.filter((c) => isText(c.type || "") && !c.pk && !enums[c.name] && !foreign.has(c.name));
  return (LABEL_NAMES.map((n) => text.find((c) => c.name.toLowerCase() === n)).find(Boolean) ?? text[0])?.name ?? null;
}

/** A Grid source over one table of the replica. Row arrays: the columns, then one label per foreign key. */
export class SqlSource {
  constructor(replica, info) {
    this.replica = replica;
    this.info = info;
    this.columns = info.columns.map((c) => ({
      name: c.name,
      numeric: /INT|REAL|FLOA|DOUB|NUM|DEC/i.test(c.type) && !info.enums[c.name] && !info.fks.get(c.name)?.label,
      title: c.type || null,
    }));
    this.labels = [...info.fks].filter(([, fk]) => fk.label).map(([column, fk], i) => ({ column, alias: `p${i}`, ...fk }));
    const select = [...info.columns.map((c) => `t.${quote(c.name)}`), ...this.labels.map((l) => `${l.alias}.${quote(l.label)}`)];
    this.select = select.join(", ");
    this.joins = this.labels.map((l) => `LEFT JOIN ${quote(l.table)} AS ${l.alias} ON ${l.alias}.${quote(l.to)} = t.${quote(l.column)}`).join(" ");
    this.table = `${quote(info.name)} AS t`;
    this.version = replica.version; // the answers below hold for this version of the data
    this.counts = new Map(); // filter -> number of rows
    this.ordered = null; // {key, ids}: the rowids of the last filter and sort, in order
    this.plans = new Map(); // sort -> whether an index gives its order (see indexed)
    this.lastWhere = null; // {filter, where}
    try {
      replica.values(`SELECT rowid FROM ${this.table} LIMIT 0`);
      this.rowid = true;
    } catch {
      this.rowid = false; // WITHOUT ROWID
    }
  }

  /** The label of column `name`'s foreign key in a row array, or undefined. */
  labelOf(row, name) {
    const i = this.labels.findIndex((l) => l.column === name);
    return i < 0 ? undefined : row[this.info.columns.length + i];
  }

  /**
   * The filter as SQL: text and date columns by LIKE, numbers by equality, enum columns by
   * name or label, foreign keys by the related row's name. Each related table is searched
   * once (a subquery), so no join is needed to find the matches.
   */
  where(filter) {
    // Kept for the last filter: the page, the count and the order all ask for it.
    if (this.lastWhere?.filter !== filter) this.lastWhere = { filter, where: this.buildWhere(filter) };
    return this.lastWhere.where;
  }

  buildWhere(filter) {
    if (!filter) return { sql: "", params: {} };
    // ESCAPE makes every LIKE slower: only when the filter holds a wildcard character.
    const special = /[\\%_]/.test(filter);
    const params = { $like: `%${special ? filter.replace(/[\\%_]/g, (c) => `\\${c}`) : filter}%` };
    const like = (expression) => `${expression} LIKE $like${special ? " ESCAPE '\\'" : ""}`;
    const terms = [];
    const number = Number(filter);
    const needle = filter.toLowerCase();
    let n = 0;
    for (const column of this.info.columns) {
      const name = `t.${quote(column.name)}`;
      const labels = this.info.enums[column.name];
      if (labels) {
        // An enum column matches by stored name or label: a list, not a LIKE per row.
        const names = Object.entries(labels).filter(([key, label]) => key.toLowerCase().includes(needle) || String(label).toLowerCase().includes(needle));
        if (!names.length) continue;
        const placeholders = names.map(([key]) => ((params[`$e${n}`] = key), `$e${n++}`));
        terms.push(`${name} IN (${placeholders.join(", ")})`);
      } else if (/CHAR|CLOB|TEXT|STRING|DATE|TIME|ENUM/i.test(column.type) || !column.type) {
        terms.push(like(name));
      } else if (/INT|REAL|FLOA|DOUB|NUM|DEC/i.test(column.type) && filter.trim() !== "" && Number.isFinite(number)) {
        params.$number = number;
        terms.push(`${name} = $number`);
      }
    }
    for (const label of this.labels) {
      const related = `SELECT ${quote(label.to)} FROM ${quote(label.table)} WHERE ${like(quote(label.label))}`;
      // A filter that names no related row leaves the term out: a look-up on every row that
      // cannot match costs more than any other term (one small query answers it here).
      if (!this.replica.values(`${related} LIMIT 1`, { $like: params.$like }).length) continue;
      terms.push(`t.${quote(label.column)} IN (${related})`);
    }
    return { sql: terms.length ? `WHERE ${terms.join(" OR ")}` : "WHERE 0", params };
  }

  /** ORDER BY for `sort` (nulls last, then the primary key); `reverse` gives the mirror order. */
  orderBy(sort, reverse = false) {
    const tiebreak = this.info.pk.length ? this.info.pk.map((c) => `t.${quote(c)}`) : this.rowid ? ["t.rowid"] : [];
    const direction = (sort?.descending ?? false) !== reverse ? "DESC" : "ASC";
    const keys = tiebreak.map((c) => `${c} ${direction}`);
    if (sort) {
      const label = this.labels.find((l) => l.column === sort.column);
      const key = label ? `${label.alias}.${quote(label.label)}` : `t.${quote(sort.column)}`;
      keys.unshift(`${key} ${direction} NULLS ${reverse ? "FIRST" : "LAST"}`);
    }
    return keys.length ? `ORDER BY ${keys.join(", ")}` : "";
  }

  /** The join a sort by a related row's name needs, or "". */
  sortJoin(sort) {
    const label = sort && this.labels.find((l) => l.column === sort.column);
    return label ? `LEFT JOIN ${quote(label.table)} AS ${label.alias} ON ${label.alias}.${quote(label.to)} = t.${quote(label.column)}` : "";
  }

  total(where) {
    const key = where.sql + JSON.stringify(where.params);
    if (!this.counts.has(key)) {
      const [[n]] = this.replica.values(`SELECT count(*) FROM ${this.table} ${where.sql}`, where.params);
      this.counts.set(key, n);
    }
    return this.counts.get(key);
  }

  /**
   * One page. Unfiltered pages near either end of the order come from one LIMIT query
   * (SQLite keeps only the top rows while sorting; the far end is read in reverse). Filtered
   * or deep sorted pages are slices of the matching rowids in order, found by one scan and
   * kept while the filter, the sort and the data stay the same, so paging through them is
   * a lookup of 50 rowids.
   */
  page({ offset, limit, sort, filter }) {
    const where = this.where(filter);
    if (!this.rowid) {
      // A WITHOUT ROWID table: plain LIMIT/OFFSET (deep sorted pages from an index).
      if (sort && offset >= TOP_N) this.indexed(sort);
      const rows = this.replica.values(`SELECT ${this.select} FROM ${this.table} ${this.joins} ${where.sql} ${this.orderBy(sort)} LIMIT ${limit} OFFSET ${offset}`, where.params);
      return { rows, total: this.total(where) };
    }
    if (!filter) {
      const total = this.total(where);
      const fromEnd = total - offset - limit;
      if (!sort || offset < TOP_N) return { rows: this.window(sort, false, offset, limit), total };
      if (fromEnd < TOP_N) return { rows: this.window(sort, true, Math.max(0, fromEnd), Math.min(limit, total - offset)).reverse(), total };
      // Deeper: read from an index on the sort column (made once per load of the replica),
      // not from a sort of every row.
      if (this.indexed(sort)) return { rows: this.window(sort, false, offset, limit), total };
    }
    const ids = this.order(where, sort);
    return { rows: this.fetch(ids.slice(offset, offset + limit), sort), total: ids.length };
  }

  /**
   * Whether SQLite reads `sort`'s order from an index rather than sorting every row. Asks the
   * planner; if it would sort, gives the replica an index on the sort column and the
   * tiebreak (Replica.sortIndex) and asks again. Only for a column of this table: a related
   * row's name is ordered through a join, which an index here does not order.
   */
  indexed(sort) {
    if (!sort || this.labels.some((l) => l.column === sort.column)) return false;
    const key = JSON.stringify(sort);
    if (!this.plans.has(key)) {
      const sorts = () =>
        this.replica.values(`EXPLAIN QUERY PLAN SELECT ${this.rowid ? "t.rowid" : "1"} FROM ${this.table} ${this.orderBy(sort)}`).some((row) => /TEMP B-TREE/i.test(String(row[3])));
      let indexed = !sorts();
      if (!indexed) {
        // The tiebreak is the primary key; an INTEGER PRIMARY KEY is the rowid, in every index already.
        const alias = this.rowid && this.info.pk.length === 1 && /^INTEGER$/i.test(this.info.columns.find((c) => c.name === this.info.pk[0])?.type ?? "");
        const columns = [...new Set([sort.column, ...(alias ? [] : this.info.pk)])];
        indexed = this.replica.sortIndex(this.info.name, columns) && !sorts();
      }
      this.plans.set(key, indexed);
    }
    return this.plans.get(key);
  }

  /** Rows `offset`… of the whole table in `sort` order (or its mirror): rowids first, then the rows. */
  window(sort, reverse, offset, limit) {
    const order = this.orderBy(sort, reverse);
    const chosen = `SELECT t.rowid FROM ${this.table} ${this.sortJoin(sort)} ${order} LIMIT ${Number(limit)} OFFSET ${Number(offset)}`;
    return this.replica.values(`SELECT ${this.select} FROM ${this.table} ${this.joins} WHERE t.rowid IN (${chosen}) ${order}`);
  }

  /** The rowids matching `where`, in `sort` order (cached for the last filter and sort). */
  order(where, sort) {
    const key = JSON.stringify([where, sort]);
    if (this.ordered?.key !== key) {
      const sql = `SELECT t.rowid FROM ${this.table} ${this.sortJoin(sort)} ${where.sql} ${this.orderBy(sort)}`;
      this.ordered = { key, ids: this.replica.values(sql, where.params).map(([id]) => id) };
    }
    return this.ordered.ids;
  }

  fetch(ids, sort) {
    if (!ids.length) return [];
    const list = ids.map((id) => Number(id)).join(", ");
    return this.replica.values(`SELECT ${this.select} FROM ${this.table} ${this.joins} WHERE t.rowid IN (${list}) ${this.orderBy(sort)}`);
  }

  all({ sort, filter }) {
    const where = this.where(filter);
    return this.replica.values(`SELECT ${this.select} FROM ${this.table} ${this.joins} ${where.sql} ${this.orderBy(sort)}`, where.params);
  }
}

/** A row's identity for matching change previews: its primary key values, as JSON. */
export function rowKey(values) {
  return JSON.stringify(values);
}

export class TableBrowser {
  constructor(root, replica) {
    this.root = root;
    this.replica = replica;
    this.selected = null;
    this.enums = {};
    this.changed = {}; // table -> Map(key -> "inserted" | "updated"), from the last request
    this.changedTables = new Set();
    this.pending = null; // {step, rows, tables} of a step waiting for approval
    this.list = root.querySelector("[data-tables]");
    this.caption = root.querySelector("[data-caption]");
    this.notice = root.querySelector("[data-pending]");
    this.holder = root.querySelector("[data-grid]");
    this.grid = null;
    this.source = null;
  }

  /** The `ready` event's schema extras (enum labels); optional. */
  setSchema({ enums } = {}) {
    this.enums = enums && typeof enums === "object" ? enums : {};
    this.grid = null; // labels may change how every table is shown
    this.source = null;
  }

  /** A value of `table`.`column` as text, as the browser shows it (enum label, money). */
  plain(table, column, value) {
    if (value === null || value === undefined) return "null";
    const label = this.enums[table]?.[column]?.[value];
    if (label !== undefined) return String(label);
    if (typeof value === "number" && isMoney(this.typeOf(table, column))) return formatMoney(value);
    return cellText(value);
  }

  typeOf(table, column) {
    if (this.types?.version !== this.replica.version) this.types = { version: this.replica.version, tables: new Map() };
    if (!this.types.tables.has(table)) {
      const columns = this.replica.db ? this.replica.query(`PRAGMA table_info(${quote(table)})`) : [];
      this.types.tables.set(table, new Map(columns.map((c) => [c.name, c.type || ""])));
    }
    return this.types.tables.get(table).get(column) ?? "";
  }

  // --- what the last request changed, and what waits for a decision ------------------------

  /** A new request: forget the previous request's highlights. */
  startRequest() {
    this.changed = {};
    this.changedTables.clear();
  }

  /** A `changes` event (committed): highlight its rows; without row detail, its tables. */
  addChanges(event) {
    for (const table of Object.keys(event.tables || {})) this.changedTables.add(table);
    for (const [table, detail] of Object.entries(event.rows || {})) {
      const marks = (this.changed[table] ??= new Map());
      const key = detail.key || [];
      for (const row of detail.inserted || []) marks.set(rowKey(key.map((k) => row[k])), "inserted");
      for (const change of detail.updated || []) if (!marks.has(rowKey(key.map((k) => change.key?.[k])))) marks.set(rowKey(key.map((k) => change.key?.[k])), "updated");
    }
  }

  setPending(event) {
    this.pending = event ? { step: event.step, rows: event.rows || {}, tables: event.tables || {} } : null;
    this.render();
  }

  // --- rendering ----------------------------------------------------------------------------

  /** Draw the table list and the selected table; a replica that cannot be read is said, not thrown. */
  render() {
    if (!this.replica.db) return;
    try {
      this.draw();
    } catch (error) {
      this.grid = this.source = null;
      this.list.replaceChildren();
      this.holder.replaceChildren();
      this.notice.replaceChildren();
      this.caption.textContent = `The tables cannot be shown: ${error.message}. They will be shown again when Python has opened the database.`;
    }
  }

  draw() {
    const tables = this.replica.tables();
    if (!tables.some((t) => t.name === this.selected)) {
      this.selected = tables[0]?.name ?? null;
      this.grid = null;
    }
    this.list.replaceChildren(...tables.map((table) => this.tab(table)));
    this.renderTable(tables.find((t) => t.name === this.selected));
  }

  tab({ name, count }) {
    const pending = this.pending?.tables[name];
    const changed = this.changedTables.has(name);
    const button = el(
      "button",
      { class: `table-tab${changed ? " changed" : ""}${pending ? " pending" : ""}`, type: "button", "aria-pressed": String(name === this.selected) },
      el("span", {}, name),
      el("span", { class: "count" }, count.toLocaleString()),
      changed ? el("span", { class: "visually-hidden" }, ", changed by the last request") : null,
      pending ? el("span", { class: "visually-hidden" }, ", has changes waiting for your decision") : null,
    );
    button.addEventListener("click", () => {
      this.selected = name;
      this.grid = null;
      this.render();
      this.list.querySelector('[aria-pressed="true"]')?.focus();
    });
    return button;
  }

  renderTable(table) {
    if (!table) {
      this.caption.textContent = "No tables yet.";
      this.holder.replaceChildren();
      this.notice.replaceChildren();
      this.grid = null;
      return;
    }
    // A source caches counts and orders: keep it while the table and the data are the same.
    const fresh = this.source?.info.name !== table.name || this.source.version !== this.replica.version;
    const source = fresh ? new SqlSource(this.replica, describeTable(this.replica, table.name, this.enums)) : this.source;
    this.source = source;
    if (this.grid) {
      this.grid.source = source; // keep the page, sort and filter
      this.grid.render();
    } else {
      this.grid = new Grid(source, {
        name: table.name,
        caption: `Rows of ${table.name}`,
        pageSize: PAGE_ROWS,
        filter: true,
        format: (value, column, row) => this.format(value, column, row),
        rowClass: (row) => this.rowClass(row),
        extraRows: () => this.pendingInserts(),
      });
      this.grid.table.dataset.rows = "";
      this.holder.replaceChildren(this.grid.element);
    }
    this.caption.textContent = `${table.name}: ${table.count.toLocaleString()} row${table.count === 1 ? "" : "s"}`;
    this.renderPendingNotice(table.name);
  }

  get info() {
    return this.source.info;
  }

  format(value, column, row) {
    const info = this.info;
    const labels = info.enums[column.name];
    if (labels && Object.hasOwn(labels, value)) return el("span", { class: "enum", title: String(value) }, String(labels[value]));
    const fk = info.fks.get(column.name);
    if (fk) {
      const label = this.source.labelOf(row, column.name);
      if (label !== undefined && label !== null) {
        return el("span", { class: "fk", title: `${fk.table} #${cellText(value)}` }, cellText(label), el("span", { class: "fk-id" }, ` #${cellText(value)}`));
      }
    }
    const type = info.columns.find((c) => c.name === column.name)?.type ?? "";
    if (isMoney(type) && typeof value === "number") return formatMoney(value);
    return cellText(value);
  }

  keyOf(row) {
    const info = this.info;
    return rowKey(info.pk.map((name) => row[info.columns.findIndex((c) => c.name === name)]));
  }

  rowClass(row) {
    const table = this.info.name;
    const key = this.info.pk.length ? this.keyOf(row) : null;
    const classes = [];
    const mark = key && this.changed[table]?.get(key);
    if (mark) classes.push("changed", `changed-${mark}`);
    const pending = this.pending?.rows[table];
    if (pending && key) {
      const keys = pending.key || this.info.pk;
      if ((pending.updated || []).some((u) => rowKey(keys.map((k) => u.key?.[k])) === key)) classes.push("pending-update");
      if ((pending.deleted || []).some((d) => rowKey(keys.map((k) => d[k])) === key)) classes.push("pending-delete");
    }
    return classes.join(" ");
  }

  /** Rows a waiting step would insert, shown above the first page. */
  pendingInserts() {
    const inserted = this.pending?.rows[this.info.name]?.inserted || [];
    return inserted.map((row) =>
      el(
        "tr",
        { class: "pending-insert", title: "Not saved yet: waiting for your decision" },
        ...this.info.columns.map((c) => {
          const value = row[c.name];
          const numeric = this.source.columns.find((column) => column.name === c.name)?.numeric;
          return value === null || value === undefined ? el("td", { class: "null" }, "null") : el("td", { class: numeric ? "num" : null }, this.format(value, { name: c.name }, []));
        }),
      ),
    );
  }

  renderPendingNotice(table) {
    const counts = this.pending?.tables[table];
    if (!counts) return this.notice.replaceChildren();
    const parts = [counts.inserted && `${counts.inserted} to insert`, counts.updated && `${counts.updated} to update`, counts.deleted && `${counts.deleted} to delete`].filter(Boolean);
    this.notice.replaceChildren(el("p", { class: "pending-note" }, `Waiting for your decision: ${parts.join(", ")} (marked below, not saved yet).`));
  }
}
