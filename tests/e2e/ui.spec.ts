// The page's presentation (issue 9 and the UI of issue 12): rendered and sanitised model
// text, shown tables and charts, the table browser, approvals with rows, undo, history,
// conversations, banners, keyboard use and small screens.
//
// Events other helpers produce in later waves (display, output_delta, rows in changes,
// history_point, tab_conflict, ...) are fed to the page through the client's own emit()
// (test hooks, ?test): the same path the worker's events take to the transcript.
import { expect, test, type Page } from "@playwright/test";
import { debugPython, openApp, query, scripted, send, startFakeModel, useFakeModel } from "./helpers";

const emit = (page: Page, event: object) => page.evaluate((e) => (window as any).__agent.emit(e), event);

/** Replace a client method by a recorder (for flows whose worker side is another helper's). */
async function stub(page: Page, name: string, result: unknown = undefined) {
  await page.evaluate(
    ([name, result]) => {
      const calls: unknown[] = ((window as any)[`__${name}Calls`] = []);
      (window as any).__agent[name as string] = (...args: unknown[]) => (calls.push(args), Promise.resolve(result));
    },
    [name, result] as const,
  );
}
const calls = (page: Page, name: string) => page.evaluate((name) => (window as any)[`__${name}Calls`], name);

test("model messages are rendered as markdown, sanitised, with highlighted code", async ({ page }) => {
  const hostile = [
    "Here is **bold**, a [safe link](https://example.org/docs) and `inline code`.",
    "| title | price |\n| --- | ---: |\n| The Hobbit | 10.99 |",
    "```python\nfor book in session.scalars(select(Book)):\n    print(book.title)\n```",
    '<script>window.__pwned = "script"</script>',
    '<img src="x" onerror="window.__pwned = \'img\'">',
    '<svg onload="window.__pwned = \'svg\'"><circle r="5"></circle></svg>',
    '<iframe src="javascript:window.__pwned = \'iframe\'"></iframe>',
    "[click me](javascript:window.__pwned='link')",
    '<a href="javascript:window.__pwned=\'anchor\'" onclick="window.__pwned=\'onclick\'">anchor</a>',
    '<p style="position:fixed;inset:0" onmouseover="window.__pwned=\'hover\'">styled</p>',
    "![tracker](https://tracker.example/pixel.png)",
  ].join("\n\n");
  const model = await startFakeModel(scripted({ message: hostile, code: "" }));
  try {
    await openApp(page);
    await useFakeModel(page, model);
    await send(page, "Show me some markdown");
    const text = page.locator(".step .text").last();
    await expect(text.locator("strong")).toHaveText("bold");
    await expect(text.locator("table th").first()).toHaveText("title");
    await expect(text.locator("table td").first()).toHaveText("The Hobbit");
    await expect(text.locator("pre code .hljs-keyword").first()).toHaveText("for");
    await expect(text.locator("a", { hasText: "safe link" })).toHaveAttribute("rel", /noopener/);

    // Nothing that runs, loads or restyles survived, and nothing ran.
    expect(await text.locator("script, img, svg, iframe, [onerror], [onload], [onclick], [onmouseover], [style]").count()).toBe(0);
    const hrefs = await text.locator("a").evaluateAll((links) => links.map((a) => a.getAttribute("href")));
    for (const href of hrefs) expect(href === null || /^https?:/.test(href)).toBe(true);
    for (const name of ["click me", "anchor"]) await text.locator("a", { hasText: name }).click();
    await text.locator("p", { hasText: "styled" }).hover();
    expect(await page.evaluate(() => (window as any).__pwned)).toBeUndefined();
    // The person's own message is text, never HTML.
    await send(page, '<img src=x onerror="window.__pwned=1"> **not bold**');
    await expect(page.locator(".msg.user .bubble").last()).toHaveText('<img src=x onerror="window.__pwned=1"> **not bold**');
    expect(await page.locator(".msg.user img").count()).toBe(0);
  } finally {
    await model.close();
  }
});

test("output streams while a step runs, with its elapsed time; shown tables page, sort and download", async ({ page }) => {
  const lazy: string[] = []; // the markdown and chart libraries: fetched only when needed
  page.on("request", (request) => /\/vendor\/|\/markdown\.js|\/chart\.js/.test(request.url()) && lazy.push(new URL(request.url()).pathname));
  await openApp(page);
  expect(lazy).toEqual([]); // none of it during boot

  // A running step: its time and its output so far.
  await emit(page, { type: "user_message", content: "Count slowly" });
  await emit(page, { type: "signal", signal: "execution", step: 41 });
  await emit(page, { type: "step_started", step: 41, at: Date.now() - 3000, timeout: 30 });
  const step = page.locator('article[data-step="41"]');
  await expect(step.locator(".phase")).toHaveText(/^Running… [34] s \(limit 30 s\)$/);
  await emit(page, { type: "output_delta", step: 41, text: "1\n" });
  await emit(page, { type: "output_delta", step: 41, text: "2\n" });
  await expect(step.locator("pre.output.live")).toHaveText("1\n2\n");
  await emit(page, { type: "execution_result", step: 41, output: "1\n2\n3\n", error: null, duration_ms: 3100, truncated: false });
  await expect(step.locator("pre.output.live")).toHaveCount(0);
  await expect(step.locator("pre.output")).toHaveText("1\n2\n3\n");
  await expect(step.locator(".phase")).toHaveText("");

  // A 10 000-row table from show(): one page in the DOM, paged, sorted, filtered, downloaded.
  const rows = Array.from({ length: 10_000 }, (_, i) => [i + 1, `book ${String(i + 1).padStart(5, "0")}`, (i * 7) % 1000]);
  await emit(page, { type: "display", step: 41, kind: "table", title: "Books, slowly", columns: ["id", "title", "stock"], rows, total: 10_000, truncated: false, spec: null });
  const shown = step.locator("figure.display");
  await expect(shown.locator("figcaption")).toContainText("Books, slowly");
  await expect(shown.locator("figcaption")).toContainText("10,000 rows");
  await expect(shown.locator("tbody tr")).toHaveCount(25);
  await expect(shown.locator(".grid-status")).toHaveText("1–25 of 10,000 · page 1 of 400");
  await shown.getByRole("button", { name: "Last page" }).click();
  await expect(shown.locator(".grid-status")).toHaveText("9,976–10,000 of 10,000 · page 400 of 400");
  await expect(shown.locator("tbody tr").last().locator("td").nth(1)).toHaveText("book 10000");
  await shown.getByRole("button", { name: "stock" }).click(); // ascending, back to page 1
  await expect(shown.locator("th", { hasText: "stock" })).toHaveAttribute("aria-sort", "ascending");
  await expect(shown.locator("tbody tr").first().locator("td").nth(2)).toHaveText("0");
  await shown.getByRole("button", { name: "stock" }).click();
  await expect(shown.locator("tbody tr").first().locator("td").nth(2)).toHaveText("999");
  await shown.getByRole("searchbox").fill("book 0004");
  await expect(shown.locator(".grid-status")).toHaveText("1–10 of 10");
  const [csv] = await Promise.all([page.waitForEvent("download"), shown.getByRole("button", { name: /CSV/ }).click()]);
  expect(csv.suggestedFilename()).toBe("Books_slowly.csv");
  const body = await (await import("node:fs/promises")).readFile(await csv.path(), "utf8");
  expect(body.split("\r\n")[0]).toBe("id,title,stock");
  expect(body.trim().split("\r\n")).toHaveLength(11); // the header and the 10 filtered rows

  // No chart code was fetched for all of that; a chart loads it and draws.
  expect(lazy).toEqual([]);
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    data: { values: [{ genre: "fantasy", books: 5 }, { genre: "romance", books: 3 }, { genre: "science fiction", books: 4 }] },
    mark: "bar",
    encoding: { x: { field: "genre", type: "nominal" }, y: { field: "books", type: "quantitative" } },
  };
  await emit(page, { type: "display", step: 41, kind: "chart", title: "Books per genre", columns: ["genre", "books"], rows: [["fantasy", 5], ["romance", 3], ["science fiction", 4]], total: 3, truncated: false, spec });
  const chart = step.locator("figure.display.chart");
  await expect(chart).toHaveAttribute("data-drawn", "");
  expect(await chart.locator(".chart-canvas svg path, .chart-canvas svg rect").count()).toBeGreaterThanOrEqual(3);
  await expect(chart.locator(".chart-canvas svg")).toContainText("science fiction");
  expect(lazy).toEqual(expect.arrayContaining(["/chart.js", "/vendor/vega.min.js", "/vendor/vega-lite.min.js", "/vendor/vega-interpreter.js"]));
  await chart.getByRole("button", { name: "Show data" }).click();
  await expect(chart.locator(".chart-data tbody tr")).toHaveCount(3);

  // A spec that asks for data from elsewhere is refused, and its rows are shown instead.
  const fetched: string[] = [];
  page.on("request", (request) => request.url().includes("evil.example") && fetched.push(request.url()));
  await emit(page, { type: "display", step: 41, kind: "chart", title: "Elsewhere", columns: ["a"], rows: [[1]], total: 1, truncated: false, spec: { data: { url: "https://evil.example/data.json" }, mark: "point" } });
  await expect(step.locator("figure.display.chart").last().locator(".note")).toContainText("could not be drawn");
  expect(fetched).toEqual([]);
});

test("the table browser pages, sorts and filters a 10 000-row table with labels, money and names", async ({ page }) => {
  await openApp(page);
  // 10 000 more books, written by Python and published to the replica as after a commit.
  await debugPython(
    page,
    `import sqlite3
db = sqlite3.connect(runtime.db_path)
db.executemany("INSERT INTO books (title, author_id, genre, price, published, stock, kind) VALUES (?, ?, ?, ?, NULL, ?, 'book')",
    [(f"Volume {i:05d}", 1 + i % 9, ["FICTION", "FANTASY", "SCIENCE_FICTION"][i % 3], 5 + (i % 100) / 4, i % 50) for i in range(10000)])
db.commit()
runtime.post_snapshot("commit")
result = 1`,
  );
  await expect(page.locator(".table-tab", { hasText: "books" })).toContainText("10,026");
  await page.locator(".table-tab", { hasText: "books" }).click();
  const panel = page.locator("[data-tables-panel]");
  const status = panel.locator(".grid-status");
  await expect(status).toHaveText("1–50 of 10,026 · page 1 of 201");
  expect(await panel.locator("[data-rows] tbody tr").count()).toBe(50);

  // Readable values: the enum's label, money with two decimals, the author's name.
  const first = panel.locator("[data-rows] tbody tr").first();
  const cell = (row: typeof first, column: string) =>
    row.locator("td").nth(["id", "title", "author_id", "genre", "price", "published", "stock", "kind", "file_format", "file_size_kb"].indexOf(column));
  await expect(cell(first, "author_id")).toHaveText("Jane Austen #1");
  await expect(cell(first, "genre")).toHaveText("romance");
  await expect(cell(first, "genre").locator(".enum")).toHaveAttribute("title", "ROMANCE");
  await expect(cell(first, "price")).toHaveText(/^\d+\.\d\d$/);

  await panel.getByRole("button", { name: "Last page" }).click();
  await expect(status).toHaveText("10,001–10,026 of 10,026 · page 201 of 201");
  await expect(cell(panel.locator("[data-rows] tbody tr").last(), "title")).toHaveText("Volume 09999");

  await panel.getByRole("button", { name: "title" }).click();
  await expect(panel.locator("th", { hasText: "title" })).toHaveAttribute("aria-sort", "ascending");
  await expect(status).toContainText("page 1 of 201");
  await expect(cell(first, "title")).toHaveText((await query(page, "SELECT title FROM books ORDER BY title LIMIT 1"))[0].title);
  await panel.getByRole("button", { name: "price" }).click();
  await panel.getByRole("button", { name: "price" }).click();
  await expect(panel.locator("th", { hasText: "price" })).toHaveAttribute("aria-sort", "descending");
  const top = Number((await cell(first, "price").textContent())!.replace(/,/g, ""));
  expect(top).toBe((await query(page, "SELECT max(price) AS p FROM books"))[0].p);

  // Filters match values, enum labels and the names of related rows.
  await panel.getByRole("searchbox").fill("Volume 0999");
  await expect(status).toHaveText("1–10 of 10");
  await panel.getByRole("searchbox").fill("science fiction");
  const sf = (await query(page, "SELECT count(*) AS n FROM books WHERE genre = 'SCIENCE_FICTION'"))[0].n;
  await expect(status).toContainText(`of ${sf.toLocaleString("en-US")}`);
  const shelley = (await query(page, "SELECT count(*) AS n FROM books WHERE author_id = 10"))[0].n; // no Volume is hers
  await panel.getByRole("searchbox").fill("Mary Shelley");
  await expect(status).toHaveText(`1–${shelley} of ${shelley}`);
  await panel.getByRole("searchbox").fill("");
  await expect(status).toContainText("of 10,026");

  // py-agent's own tables are not shown.
  await debugPython(page, `import sqlite3\ndb = sqlite3.connect(runtime.db_path)\ndb.execute("CREATE TABLE IF NOT EXISTS py_agent_test_bookkeeping (x)")\ndb.commit()\nruntime.post_snapshot("commit")\nresult = 1`);
  await expect(page.locator(".table-tab", { hasText: "books" })).toContainText("10,026");
  expect(await page.locator(".table-tab", { hasText: "py_agent" }).count()).toBe(0);
});

test("rows changed by the last request are highlighted; a waiting step's rows show in the card and the browser", async ({ page }) => {
  await openApp(page);
  await page.locator(".table-tab", { hasText: "authors" }).click();
  await emit(page, { type: "user_message", content: "Rename Jane Austen" });
  await emit(page, {
    type: "changes", step: 1, status: "committed",
    tables: { authors: { inserted: 0, updated: 1, deleted: 0 } },
    rows: { authors: { key: ["id"], inserted: [], updated: [{ key: { id: 1 }, before: { name: "Jane Austen" }, after: { name: "J. Austen" } }], deleted: [] } },
  });
  await emit(page, { type: "saved", reason: "commit", db: true });
  const table = page.locator("[data-tables-panel] [data-rows]");
  await expect(table.locator("tbody tr").first()).toHaveClass(/changed/);
  await expect(table.locator("tbody tr").nth(1)).not.toHaveClass(/changed/);
  await expect(page.locator(".table-tab", { hasText: "authors" })).toHaveClass(/changed/);
  await expect(page.locator(".changes.committed.saved")).toContainText("Changes saved");
  await page.locator(".row-changes summary").first().click();
  await expect(page.locator("table.preview.updated")).toContainText("Jane Austen");
  await expect(page.locator("table.preview.updated td.after")).toHaveText("J. Austen");

  // A step waiting for approval, with its rows.
  await emit(page, { type: "turn_end", reason: "done", steps: 1, input_tokens: 0, output_tokens: 0 });
  await emit(page, { type: "user_message", content: "Tidy the authors" });
  const rows = {
    authors: {
      key: ["id"],
      inserted: [{ id: 11, name: "Ada Palmer", born: null, country: "US" }],
      updated: [{ key: { id: 2 }, before: { country: "GB" }, after: { country: "IN" } }],
      deleted: [{ id: 3, name: "Octavia E. Butler", born: "1947-06-22", country: "US" }],
    },
  };
  const tables = { authors: { inserted: 1, updated: 1, deleted: 1 } };
  await emit(page, { type: "changes", step: 2, status: "pending", tables, rows });
  await emit(page, { type: "approval_required", step: 2, code: "...", tables, rows, kind: "write", detail: null });
  await expect(page.locator("[data-status]")).toHaveText("Waiting for your decision");
  const card = page.locator('.approval[data-approval="2"]');
  await expect(card.locator("table.preview.inserted")).toContainText("Ada Palmer");
  await expect(card.locator("table.preview.updated td.before")).toHaveText("GB");
  await expect(card.locator("table.preview.updated td.after")).toHaveText("IN");
  await expect(card.locator("table.preview.deleted")).toContainText("Octavia E. Butler");
  await expect(page.locator(".pending-note")).toContainText("1 to insert, 1 to update, 1 to delete");
  await expect(table.locator("tr.pending-insert")).toContainText("Ada Palmer");
  await expect(table.locator("tbody tr").nth(2)).toHaveClass(/pending-update/); // id 2, after the pending insert
  await expect(table.locator("tbody tr").nth(3)).toHaveClass(/pending-delete/);

  // Three choices; the one taken is shown.
  await stub(page, "decide");
  await expect(card.getByRole("button")).toHaveText(["Save changes", "Decline", "Allow for the rest of this conversation"]);
  await card.getByRole("button", { name: "Allow for the rest of this conversation" }).click();
  expect(await calls(page, "decide")).toEqual([[true, { remember: true }]]);
  await emit(page, { type: "approval_decision", step: 2, approved: true, remember: true });
  await expect(card).toHaveClass(/decided/);
  await expect(card.locator(".question")).toHaveText(/You saved these changes\. Later changes in this conversation are saved without asking\./);
  await expect(card.getByRole("button", { name: "Allow for the rest of this conversation" })).toHaveAttribute("aria-pressed", "true");
  await expect(card.getByRole("button", { name: "Save changes" })).toHaveAttribute("aria-pressed", "false");
  await expect(table.locator("tr.pending-insert")).toHaveCount(0);
  await expect(page.locator(".pending-note")).toHaveCount(0);
});

test("undo on a committed request, the history view, an import's preview and the banners", async ({ page }) => {
  await openApp(page);
  await send(page, "Add Tolkien and two of his books");
  const authors = () => query(page, "SELECT count(*) AS n FROM authors");
  expect(await authors()).toEqual([{ n: 11 }]);
  // The rows the request inserted are highlighted in the browser.
  await page.locator(".table-tab", { hasText: "authors" }).click();
  await expect(page.locator("[data-tables-panel] [data-rows] tr.changed")).toContainText("J. R. R. Tolkien");

  const undo = page.locator(".turn .turn-actions").getByRole("button", { name: /Undo the changes of “Add Tolkien/ });
  await expect(page.locator(".turn-actions")).toContainText("authors 1 inserted; books 2 inserted");
  await undo.click();
  await expect(undo).toHaveText("Undone");
  await expect(page.locator(".note.undone")).toContainText("Undone: authors 1 deleted; books 2 deleted");
  await expect.poll(authors).toEqual([{ n: 10 }]);
  await expect(page.locator(".table-tab", { hasText: "authors" })).toContainText("10");

  // The history lists the points, newest first (the undo is one too); an older one can be restored.
  page.on("dialog", (dialog) => dialog.accept());
  await page.getByRole("button", { name: "History" }).click();
  const history = page.locator("dialog[data-history]");
  await expect(history.locator("li")).toHaveCount(2);
  await expect(history.locator("li").first()).toContainText("undo: Add Tolkien and two of his books");
  await expect(history.locator("li").last()).toHaveClass(/undone/);
  await history.getByRole("button", { name: /Restore the data to how it was after “Add Tolkien/ }).click();
  await expect.poll(authors).toEqual([{ n: 11 }]);
  await expect(page.locator(".note.undone").last()).toContainText("Restored an earlier point");

  // An import pauses with the schema report and asks before replacing anything.
  const detail = {
    ok: true, problems: [], warnings: ["tags is not in the file: it will be empty"], extra_tables: ["notes"],
    tables: [
      { name: "authors", found: true, rows_in_file: 3, rows_now: 11, missing_columns: [], required_missing: [], extra_columns: ["nickname"], type_mismatches: [] },
      { name: "tags", found: false, rows_in_file: 0, rows_now: 5, missing_columns: [], required_missing: [], extra_columns: [], type_mismatches: [] },
    ],
  };
  await emit(page, { type: "approval_required", step: 9, code: "", tables: { authors: { inserted: 3, updated: 0, deleted: 11 } }, rows: {}, kind: "import", detail });
  const card = page.locator('.approval[data-kind="import"]');
  await expect(card.locator(".question")).toContainText("Replace the database");
  await expect(card.locator(".report tbody tr").first()).toHaveText(["authors", "11", "3", "extra columns (ignored): nickname"].join(""));
  await expect(card.locator(".report tbody tr").last()).toContainText("not in the file: it will be empty");
  await expect(card.locator(".report")).toContainText("left out): notes.");
  await expect(card.getByRole("button")).toHaveText(["Replace the database", "Keep the current database"]);

  // Banners: another tab, damaged storage, a lost worker.
  await stub(page, "takeOver");
  await stub(page, "downloadDamaged", new Uint8Array([1, 2, 3]));
  await emit(page, { type: "tab_conflict", state: "other-tab-active" });
  await page.locator('[data-banner="tab"]').getByRole("button", { name: "Use here" }).click();
  expect(await calls(page, "takeOver")).toHaveLength(1);
  await emit(page, { type: "tab_conflict", state: "resolved" });
  await expect(page.locator('[data-banner="tab"]')).toHaveCount(0);
  await emit(page, { type: "storage_damaged", what: "conversation", message: "The saved conversation could not be read; a copy was kept." });
  const damaged = page.locator('[data-banner="damaged-conversation"]');
  await expect(damaged).toHaveAttribute("role", "alert");
  const [file] = await Promise.all([page.waitForEvent("download"), damaged.getByRole("button", { name: "Download the damaged copy" }).click()]);
  expect(file.suggestedFilename()).toBe("damaged-conversation.json");
  await emit(page, { type: "worker_lost", reason: "memory", message: "Python ran out of memory. Restoring it from the last save…" });
  await expect(page.locator('[data-banner="worker_lost"]')).toContainText("ran out of memory");
  await emit(page, { type: "ready", restored: true, tables: {}, enums: {} });
  await expect(page.locator('[data-banner="worker_lost"]')).toContainText("Python was restored");
  await emit(page, { type: "pending_discarded", step: 9 });
  await expect(card.locator(".question")).toContainText("discarded");
});

test("conversations: a new one keeps the data, old ones can be read and continued", async ({ page }) => {
  await openApp(page);
  await page.getByRole("button", { name: "Add Tolkien and two of his books" }).click();
  await expect(page.locator(".turn-end")).toHaveText(/^Done · 2 steps$/); // no token count: the demo model makes no calls
  await expect(page.locator("[data-model]")).toHaveText("Model: demo (recorded replies, no key)");
  await page.getByRole("button", { name: "How many rows does each table have?" }).click();
  await expect(page.locator(".turn-end")).toHaveCount(2);
  // Step numbers start again in each turn, as the footer counts them.
  await expect(page.locator(".turn").last().locator(".badge").first()).toHaveText("step 1");

  await page.getByRole("button", { name: "New conversation" }).click();
  await expect(page.locator("[data-log] .msg.user")).toHaveCount(0);
  await expect(page.locator(".notice").last()).toContainText("New conversation");
  expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 11 }]); // the data stays
  await expect.poll(() => debugPython(page, "result = len(runtime.state.messages)")).toBe(0);
  // Suggestions are still there, and the new conversation works.
  await page.getByRole("button", { name: "Which customers bought nothing this year?" }).click();
  await expect(page.locator(".turn-end")).toHaveCount(1);

  await page.getByRole("button", { name: "Conversations" }).click();
  const dialog = page.locator("dialog[data-conversations]");
  await expect(dialog.locator("li")).toHaveCount(1);
  await expect(dialog.locator("li")).toContainText("Add Tolkien and two of his books");
  await expect(dialog.locator("li")).toContainText("2 requests");
  await dialog.getByRole("button", { name: /^Read/ }).click();
  await expect(dialog.locator("[data-reader-log] .msg.user")).toHaveCount(2);
  await dialog.getByRole("button", { name: "Back to the list" }).click();
  await dialog.getByRole("button", { name: /^Continue/ }).click();
  await expect(page.locator("[data-log] .msg.user")).toHaveCount(2);
  await expect(page.locator("[data-log] .msg.user").first()).toHaveText("Add Tolkien and two of his books");
  await expect.poll(() => debugPython(page, "result = sum(m.kind == 'user' for m in runtime.state.messages)")).toBe(2);
  // The conversation it replaced is kept in the list in its turn.
  await page.getByRole("button", { name: "Conversations" }).click();
  await expect(dialog.locator("li")).toHaveCount(1);
  await expect(dialog.locator("li")).toContainText("Which customers bought nothing this year?");
  await dialog.getByRole("button", { name: "Close" }).click();

  // After a reload the continued conversation is the current one.
  await page.reload();
  await page.evaluate(() => (window as any).pyAgent.ready);
  await expect(page.locator("[data-log] .msg.user")).toHaveCount(2);
});

test("token counts are shown for a real model's calls", async ({ page }) => {
  const model = await startFakeModel(scripted({ message: "Nothing to do.", code: "" }));
  try {
    await openApp(page);
    await useFakeModel(page, model);
    await expect(page.locator("[data-model]")).toHaveText("Model: openai-compatible:fake-model");
    await send(page, "Say hello");
    await expect(page.locator(".turn-end").last()).toHaveText(/^Done · 1 step · 120 tokens so far/);
    // Only the finished message is announced; the log itself is not a live region.
    await expect(page.locator("[data-announce]")).toHaveText("Done. Nothing to do.");
    expect(await page.locator("[data-log]").getAttribute("aria-live")).toBeNull();
    expect(await page.locator("[data-log] [aria-live], [data-log] [role=alert], [data-log] [role=status]").count()).toBe(0);
  } finally {
    await model.close();
  }
});

test("keyboard only: a message typed while Python boots is sent; chips keep focus; every control is reachable", async ({ page }) => {
  await page.goto("/?test&nosw");
  const layout = await page.locator(".layout").boundingBox(); // the boot progress floats: nothing moves when it goes
  // Type and send before Python is ready: the message waits in the queue, then goes.
  await page.locator("[data-input]").fill("How many rows does each table have?");
  await page.locator("[data-input]").press("Enter");
  await page.waitForFunction(() => (window as any).pyAgent !== undefined);
  const ready = await page.evaluate(() => Promise.race([(window as any).pyAgent.ready.then(() => "ready"), new Promise((r) => setTimeout(() => r("booting"), 0))]));
  if (ready === "booting") await expect(page.locator(".msg.user.queued")).toContainText("How many rows does each table have?");
  await expect(page.locator(".turn-end")).toHaveText(/^Done/, { timeout: 60_000 });
  await expect(page.locator(".msg.user")).toHaveText("How many rows does each table have?");
  await expect(page.locator(".msg.user.queued")).toHaveCount(0);
  await expect(page.locator("[data-boot]")).toBeHidden();
  expect(await page.locator(".layout").boundingBox()).toEqual(layout);

  // A chip sends its text and leaves the focus in the composer.
  await page.getByRole("button", { name: "Add Tolkien and two of his books" }).focus();
  await page.keyboard.press("Enter");
  await expect(page.locator("[data-input]")).toBeFocused();
  await page.keyboard.type("next question");
  await expect(page.locator("[data-input]")).toHaveValue("next question");
  await expect(page.locator(".turn-end")).toHaveCount(2);

  // Tab reaches every control of the header, the composer and the tables panel.
  const reached = new Set<string>();
  await page.locator(".skip").focus();
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press("Tab");
    reached.add(await page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      return el.getAttribute("aria-label") || el.textContent?.trim().slice(0, 40) || el.tagName;
    }));
  }
  for (const name of ["Tables", "New conversation", "Conversations", "History", "Settings", "Send", "Change model", "Download .sqlite", "Import…", "Copy", "Filter authors"]) {
    expect([...reached], name).toContain(name);
  }
  // Import… opens the file chooser from the keyboard.
  await page.getByRole("button", { name: "Import…" }).focus();
  const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.keyboard.press("Enter")]);
  expect(chooser.isMultiple()).toBe(false);
});

test("a 390×844 phone: no horizontal overflow, a compact header, the tables in a drawer", async ({ page }, testInfo) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await openApp(page);
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(await overflow()).toBe(0);
  const header = await page.locator(".topbar").boundingBox();
  expect(header!.height).toBeLessThanOrEqual(56);
  await expect(page.locator("[data-menu] > summary")).toBeVisible();
  await expect(page.locator("[data-tables-panel]")).toBeHidden();

  await page.getByRole("button", { name: "Add Tolkien and two of his books" }).click();
  await expect(page.locator(".turn-end")).toHaveText(/^Done/);
  expect(await overflow()).toBe(0);
  await testInfo.attach("phone-chat", { body: await page.screenshot(), contentType: "image/png" });

  await page.getByRole("button", { name: "Tables" }).click();
  const panel = page.locator("[data-tables-panel]");
  await expect(panel).toBeVisible();
  await expect(page.getByRole("button", { name: "Tables" })).toHaveAttribute("aria-expanded", "true");
  await panel.locator(".table-tab", { hasText: "books" }).click();
  await expect(panel.locator("[data-rows]")).toContainText("The Hobbit");
  expect(await overflow()).toBe(0);
  await testInfo.attach("phone-tables", { body: await page.screenshot(), contentType: "image/png" });
  await page.keyboard.press("Escape");
  await expect(panel).toBeHidden();
  await expect(page.getByRole("button", { name: "Tables" })).toBeFocused();

  // The menu holds the rest, and Settings still works from it.
  await page.locator("[data-menu] > summary").click();
  await page.getByRole("button", { name: "Settings" }).click();
  await expect(page.locator("dialog[data-settings]")).toBeVisible();
  expect(await overflow()).toBe(0);
});
