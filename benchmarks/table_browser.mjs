// Table browser benchmark: how long one page of a 100 000-row table takes through the
// sql.js replica (web/app/tables.js: LIMIT/OFFSET/ORDER BY/WHERE, foreign-key names
// joined in), and the same page drawn by the grid (web/app/grid.js). Target: a page in
// under 100 ms. Prints figures; asserts nothing.
//
//   node benchmarks/table_browser.mjs [--rows 100000] [--runs 7]
//
// Serves the built site (PY_AGENT_DIST or web/dist; run `python build.py build` first)
// with tools/devserver.py, opens the app in Debian's Chromium, waits until Python is
// ready (so its boot does not compete for the CPU), then builds the table in sql.js.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "@playwright/test";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const ROWS = Number(opt("rows", 100_000));
const RUNS = Number(opt("runs", 7));
const dist = process.env.PY_AGENT_DIST ? path.resolve(process.env.PY_AGENT_DIST) : path.join(root, "web/dist");

function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn("python3", [path.join(root, "tools/devserver.py"), "--port", "0", "--dir", dist], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    proc.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/at (http:\/\/[^/\s]+)\//);
      if (m) resolve({ proc, base: m[1] });
    });
    proc.on("exit", (code) => reject(new Error(`devserver exited (${code}): ${out}`)));
  });
}

/** Runs in the page: build the table, then time each scenario (median of `runs`). */
async function measure({ rows, runs }) {
  const { Replica } = await import("/replica.js");
  const { describeTable, SqlSource } = await import("/tables.js");
  const { Grid } = await import("/grid.js");
  const SQL = await globalThis.initSqlJs({ locateFile: (file) => `/sqljs/${file}` });
  const db = new SQL.Database();
  const genres = ["FICTION", "FANTASY", "SCIENCE_FICTION", "ROMANCE", "HORROR", "NON_FICTION"];
  db.run(`CREATE TABLE authors (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, country VARCHAR(2));
          CREATE TABLE books (id INTEGER PRIMARY KEY, title VARCHAR(300) NOT NULL, author_id INTEGER NOT NULL REFERENCES authors (id),
            genre VARCHAR(15) NOT NULL, price NUMERIC(10, 2) NOT NULL, published DATE, stock INTEGER NOT NULL);
          CREATE INDEX ix_books_title ON books (title);`);
  db.run("BEGIN");
  const author = db.prepare("INSERT INTO authors (id, name, country) VALUES (?, ?, ?)");
  for (let i = 1; i <= 1000; i++) author.run([i, `Author ${String(i).padStart(4, "0")}`, i % 2 ? "GB" : "US"]);
  author.free();
  const book = db.prepare("INSERT INTO books (title, author_id, genre, price, published, stock) VALUES (?, ?, ?, ?, ?, ?)");
  for (let i = 0; i < rows; i++) {
    book.run([`Volume ${String((i * 7919) % rows).padStart(6, "0")}`, 1 + (i % 1000), genres[i % 6], 5 + ((i * 37) % 4000) / 100, `19${String(50 + (i % 50))}-01-01`, i % 40]);
  }
  book.free();
  db.run("COMMIT");
  const bytes = db.export();
  db.close();
  const replica = new Replica();
  await replica.load(bytes);
  const enums = { books: { genre: Object.fromEntries(genres.map((g) => [g, g.toLowerCase().replace("_", " ")])) } };
  const info = describeTable(replica, "books", enums);

  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const time = async (fn) => {
    const samples = [];
    for (let i = 0; i < runs; i++) {
      if (fn.fresh) await replica.load(bytes); // untimed: the file as the worker posts it after a step
      const t0 = performance.now();
      fn();
      samples.push(performance.now() - t0);
    }
    return median(samples);
  };
  // "cold": a fresh source over a freshly loaded replica per run (nothing cached: the count,
  // the order of a deep sorted page or of a filter's matches, an index the replica made for
  // a sort are part of the time); "warm": the next page, as when paging on (the source keeps
  // what the first page found).
  const check = (result, query) => {
    if (result.rows.length !== Math.min(50, Math.max(0, result.total - (query.offset ?? 0)))) throw new Error(`short page: ${JSON.stringify(query)}`);
  };
  const cold = (query) => Object.assign(() => check(new SqlSource(replica, info).page({ limit: 50, sort: null, filter: "", offset: 0, ...query }), query), { fresh: true });
  const warm = (query) => {
    const source = new SqlSource(replica, info);
    source.page({ limit: 50, sort: null, filter: "", offset: 0, ...query });
    let n = 0;
    return () => {
      const next = { limit: 50, sort: null, filter: "", ...query, offset: (query.offset ?? 0) + 50 * (++n % 20) };
      check(source.page(next), next);
    };
  };
  const bySort = (column, descending = false) => ({ column, descending });
  const figures = {
    "first page": await time(cold({})),
    "page at row 50 000": await time(cold({ offset: 50_000 })),
    "last page": await time(cold({ offset: rows - 50 })),
    "sorted by title (indexed), first page": await time(cold({ sort: bySort("title") })),
    "sorted by price (no index), first page": await time(cold({ sort: bySort("price", true) })),
    "sorted by price, last page": await time(cold({ sort: bySort("price"), offset: rows - 50 })),
    "sorted by price, page at row 50 000, cold": await time(cold({ sort: bySort("price"), offset: 50_000 })),
    "sorted by price, page at row 50 000, warm": await time(warm({ sort: bySort("price"), offset: 50_000 })),
    "sorted by author name (joined), first page": await time(cold({ sort: bySort("author_id") })),
    "sorted by author name, page at row 50 000, cold": await time(cold({ sort: bySort("author_id"), offset: 50_000 })),
    "filtered by text, first page (one scan)": await time(cold({ filter: "Volume 04242" })),
    "filtered by enum label, first page": await time(cold({ filter: "science fiction" })),
    "filtered by enum label, next pages": await time(warm({ filter: "science fiction" })),
  };
  // The same page drawn: query + 50 rows of DOM with labels and money formatting.
  const grid = new Grid(new SqlSource(replica, info), { name: "books", pageSize: 50 });
  document.body.append(grid.element);
  let offset = 0;
  figures["grid: query + draw one page"] = await time(() => {
    offset = (offset + 997 * 50) % (rows - 50);
    grid.go(offset);
  });
  grid.element.remove();
  return figures;
}

const { proc, base } = await startServer();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
try {
  const page = await browser.newPage();
  await page.goto(`${base}/?nosw`);
  await page.waitForFunction(() => window.pyAgent !== undefined);
  await page.evaluate(() => window.pyAgent.ready);
  const t0 = Date.now();
  const figures = await page.evaluate(measure, { rows: ROWS, runs: RUNS });
  console.log(`table browser: one page (50 rows) of a ${ROWS.toLocaleString("en-US")}-row table, sql.js in Chromium, median of ${RUNS} (target < 100 ms)`);
  for (const [name, ms] of Object.entries(figures)) console.log(`  ${name.padEnd(48)} ${ms.toFixed(1).padStart(7)} ms${ms < 100 ? "" : "   OVER TARGET"}`);
  console.log(`  (building the table took ${((Date.now() - t0) / 1000).toFixed(1)} s in all)`);
} finally {
  await browser.close();
  proc.kill();
}
