// A paged, sortable <table> over a data source: the table browser (rows from the sql.js
// replica, see tables.js) and the tables the model shows with show() (rows in memory).
//
// Only the current page is in the DOM, so a 100 000-row source pages as fast as its
// source answers. A source is synchronous (sql.js and arrays both are):
//   source.columns                      [{name, numeric?}]
//   source.page({offset, limit, sort, filter}) -> {rows: [[value]], total}
//   source.all({sort, filter})          -> [[value]]   (copy and CSV)
// `sort` is {column, descending} or null; `filter` a string ("" for none).

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

/** A plain-text rendering of a cell value (copy, CSV and the default cell text). */
export function cellText(value) {
  if (value === null || value === undefined) return "";
  if (value instanceof Uint8Array) return `‹${value.length} bytes›`;
  if (typeof value === "object") return value.$blob !== undefined ? `‹${value.$blob} bytes›` : JSON.stringify(value);
  return String(value);
}

export function isNumber(value) {
  return typeof value === "number" || typeof value === "bigint";
}

let gridIds = 0;

export class Grid {
  /**
   * @param source   see the top of this file
   * @param options  {name, caption, pageSize, filter (show a filter box), format(value, column,
   *                 row) -> Node|string, rowClass(row) -> string, extraRows() -> [tr] (shown
   *                 above the first page), onRender()}
   */
  constructor(source, options = {}) {
    this.source = source;
    this.options = options;
    this.pageSize = options.pageSize ?? 50;
    this.offset = 0;
    this.sort = null;
    this.filter = "";
    this.id = `grid-${++gridIds}`;
    this.element = this.build();
    this.render();
  }

  build() {
    const { name = "table", caption, filter } = this.options;
    this.table = el("table", { class: "rows", id: this.id });
    if (caption) this.table.append(el("caption", { class: "visually-hidden" }, caption));
    this.status = el("span", { class: "grid-status", "aria-live": "polite" });
    this.first = pagerButton("«", "First page");
    this.previous = pagerButton("‹", "Previous page");
    this.next = pagerButton("›", "Next page");
    this.last = pagerButton("»", "Last page");
    this.first.addEventListener("click", () => this.go(0));
    this.previous.addEventListener("click", () => this.go(this.offset - this.pageSize));
    this.next.addEventListener("click", () => this.go(this.offset + this.pageSize));
    this.last.addEventListener("click", () => this.go(Math.floor((this.total - 1) / this.pageSize) * this.pageSize));
    const copy = el("button", { type: "button", class: "ghost small" }, "Copy");
    copy.addEventListener("click", () => this.copy(copy));
    const csv = el("button", { type: "button", class: "ghost small" }, "CSV");
    csv.setAttribute("aria-label", `Download ${name} as CSV`);
    csv.addEventListener("click", () => this.downloadCsv());
    const tools = el("div", { class: "grid-tools" });
    if (filter) {
      this.filterInput = el("input", { type: "search", class: "grid-filter", placeholder: "Filter rows…", "aria-label": `Filter ${name}`, "aria-controls": this.id });
      let timer = 0;
      this.filterInput.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(() => this.setFilter(this.filterInput.value), 150);
      });
      tools.append(this.filterInput);
    }
    tools.append(el("span", { class: "spacer" }), copy, csv);
    const pager = el("nav", { class: "pager", "aria-label": `Pages of ${name}` }, this.first, this.previous, this.status, this.next, this.last);
    this.scroller = el("div", { class: "grid-scroll" }, this.table);
    return el("div", { class: "grid" }, tools, this.scroller, pager);
  }

  setFilter(text) {
    this.filter = text.trim();
    this.offset = 0;
    this.render();
  }

  go(offset) {
    this.offset = Math.max(0, Math.min(offset, Math.max(0, this.total - 1)));
    this.offset -= this.offset % this.pageSize;
    this.render();
    this.scroller.scrollTop = 0;
  }

  sortBy(column) {
    const same = this.sort?.column === column;
    // Ascending, then descending, then back to the source's own order.
    this.sort = !same ? { column, descending: false } : this.sort.descending ? null : { column, descending: true };
    this.offset = 0;
    this.render();
  }

  /** Query the source again (e.g. the data changed), keeping the page if it still exists. */
  render() {
    const { rows, total } = this.source.page({ offset: this.offset, limit: this.pageSize, sort: this.sort, filter: this.filter });
    this.total = total;
    if (this.offset && this.offset >= total) return this.go(total - 1);
    this.renderHead();
    const body = el("tbody", {});
    if (this.offset === 0 && this.options.extraRows) body.append(...this.options.extraRows());
    for (const row of rows) body.append(this.renderRow(row));
    if (!rows.length && !body.childElementCount) {
      body.append(el("tr", {}, el("td", { class: "empty", colspan: String(this.source.columns.length || 1) }, this.filter ? "No rows match the filter." : "No rows.")));
    }
    this.table.querySelector("tbody")?.remove();
    this.table.append(body);
    const pages = Math.max(1, Math.ceil(total / this.pageSize));
    const page = Math.floor(this.offset / this.pageSize) + 1;
    const to = Math.min(this.offset + rows.length, total);
    this.status.textContent = total
      ? `${(this.offset + 1).toLocaleString()}–${to.toLocaleString()} of ${total.toLocaleString()}${pages > 1 ? ` · page ${page} of ${pages.toLocaleString()}` : ""}`
      : "0 rows";
    this.first.disabled = this.previous.disabled = this.offset === 0;
    this.next.disabled = this.last.disabled = to >= total;
    this.options.onRender?.(this);
  }

  renderHead() {
    const cells = this.source.columns.map((column) => {
      const sorted = this.sort?.column === column.name;
      const direction = sorted ? (this.sort.descending ? "descending" : "ascending") : null;
      const button = el("button", { type: "button", class: "sort" }, column.label ?? column.name, el("span", { class: "arrow", "aria-hidden": "true" }, sorted ? (this.sort.descending ? "▼" : "▲") : ""));
      button.addEventListener("click", () => this.sortBy(column.name));
      return el("th", { scope: "col", class: column.numeric ? "num" : null, "aria-sort": direction, title: column.title ?? null }, button);
    });
    const head = el("thead", {}, el("tr", {}, ...cells));
    const old = this.table.querySelector("thead");
    if (old) old.replaceWith(head);
    else this.table.append(head);
    // Keep keyboard focus on the header that was just used.
    if (this.sort && document.activeElement?.classList.contains("sort")) {
      const index = this.source.columns.findIndex((c) => c.name === this.sort.column);
      head.querySelectorAll("button.sort")[index]?.focus();
    }
  }

  renderRow(row) {
    const format = this.options.format;
    const cells = this.source.columns.map((column, i) => {
      const value = row[i];
      if (value === null || value === undefined) return el("td", { class: "null" }, "null");
      const shown = format ? format(value, column, row) : cellText(value);
      const attributes = { class: column.numeric ? "num" : null };
      if (typeof shown === "string" && shown.length > 40) attributes.title = shown;
      return el("td", attributes, shown);
    });
    return el("tr", { class: this.options.rowClass?.(row) || null }, ...cells);
  }

  /** Every row (filtered and sorted as shown), as tab-separated text on the clipboard. */
  async copy(button) {
    const rows = [this.source.columns.map((c) => c.name), ...this.source.all({ sort: this.sort, filter: this.filter }).map((r) => r.map(cellText))];
    const text = rows.map((r) => r.map((v) => v.replace(/[\t\n]/g, " ")).join("\t")).join("\n");
    await copyText(text, button);
  }

  downloadCsv() {
    const rows = [this.source.columns.map((c) => c.name), ...this.source.all({ sort: this.sort, filter: this.filter }).map((r) => r.map(cellText))];
    const csv = rows.map((r) => r.map(csvField).join(",")).join("\r\n") + "\r\n";
    download(new Blob([csv], { type: "text/csv;charset=utf-8" }), `${safeName(this.options.name || "table")}.csv`);
  }
}

function pagerButton(text, label) {
  return el("button", { type: "button", class: "ghost small", "aria-label": label, title: label }, text);
}

function csvField(text) {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function safeName(name) {
  return name.replace(/[^\w.-]+/g, "_").slice(0, 80) || "table";
}

/** Put `text` on the clipboard; the button says whether it worked. */
export async function copyText(text, button) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => (button.textContent = label), 1500);
}

export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// --- a source over rows in memory (the model's show()) ----------------------------------------

export class MemorySource {
  constructor(columns, rows) {
    this.rows = rows;
    this.columns = columns.map((name, i) => ({ name, numeric: rows.length > 0 && rows.every((r) => r[i] === null || isNumber(r[i])) }));
    this.cache = { key: null, rows };
  }

  /** Rows filtered and sorted, cached for the last (sort, filter): paging does not redo it. */
  view({ sort, filter }) {
    const key = JSON.stringify([sort, filter]);
    if (this.cache.key === key) return this.cache.rows;
    let rows = this.rows;
    if (filter) {
      const needle = filter.toLowerCase();
      rows = rows.filter((row) => row.some((v) => cellText(v).toLowerCase().includes(needle)));
    }
    if (sort) {
      const i = this.columns.findIndex((c) => c.name === sort.column);
      const sign = sort.descending ? -1 : 1;
      rows = rows.map((row, n) => [row, n]).sort(([a, an], [b, bn]) => compare(a[i], b[i], sign) || an - bn).map(([row]) => row);
    }
    this.cache = { key, rows };
    return rows;
  }

  page({ offset, limit, sort, filter }) {
    const rows = this.view({ sort, filter });
    return { rows: rows.slice(offset, offset + limit), total: rows.length };
  }

  all(query) {
    return this.view(query);
  }
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

/** Nulls last either way; numbers as numbers, text in the reader's language order. */
function compare(a, b, sign) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (isNumber(a) && isNumber(b)) return sign * (a < b ? -1 : 1);
  return sign * collator.compare(cellText(a), cellText(b));
}
