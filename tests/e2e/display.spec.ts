// show() and chart() from Python (issue 9.1): a real turn whose code, from a scripted fake
// model, shows a query result and a chart. The `display` events come out of the worker's
// agent loop (not injected, as in ui.spec.ts) and the page draws a <table> and an SVG chart.
import { expect, test } from "@playwright/test";
import { collectEvents, events, openApp, query, screenshot, scripted, send, startFakeModel, useFakeModel } from "./helpers";

const CODE = [
  'show(session.execute(select(Book.title, Book.price, Book.genre).order_by(Book.title)), title="Books by title")',
  'chart(session.execute(select(Book.genre, func.count().label("books")).group_by(Book.genre).order_by(Book.genre)), x="genre", y="books", title="Books per genre")',
].join("\n");

// Every chart kind, as a second step: each must compile and draw (no "could not be drawn").
const KINDS = [
  "rows = session.execute(select(Book.title, Book.published, Book.price, Book.stock, Book.genre).order_by(Book.published)).all()",
  'chart(rows, x="published", y="price", kind="line", title="Prices over time")',
  'chart(rows, x="published", y=["price", "stock"], kind="line", title="Two series")',
  'chart(rows, x="published", y="stock", kind="area", color="genre", title="Stock by genre")',
  'chart(rows, x="price", y="stock", kind="scatter", color="genre", title="Price and stock")',
  'chart(rows, x="price", kind="histogram", bins=10, title="Prices")',
  'chart(session.execute(select(Book.genre, func.sum(Book.stock).label("stock")).group_by(Book.genre)), kind="pie", title="Stock per genre")',
].join("\n");

test("a turn's show() and chart() draw a table and charts of every kind; the model reads only a summary", async ({ page }) => {
  const model = await startFakeModel(scripted({ message: "Here they are.", code: CODE }, { message: "And as charts.", code: KINDS }));
  try {
    const errors = await openApp(page);
    await useFakeModel(page, model);
    await collectEvents(page);
    await send(page, "Show me the books, and how many there are per genre");
    const [{ n: books }] = await query(page, "SELECT count(*) AS n FROM books");

    // The events, as the worker posted them.
    const displays = await events(page, "display");
    expect(displays.map((d) => [d.kind, d.title, d.truncated])).toEqual([
      ["table", "Books by title", false],
      ["chart", "Books per genre", false],
      ...["Prices over time", "Two series", "Stock by genre", "Price and stock", "Prices", "Stock per genre"].map((title) => ["chart", title, false]),
    ]);
    expect(displays[0].total).toBe(books);
    expect(displays[0].columns).toEqual(["title", "price", "genre"]);
    expect(displays[0].rows).toHaveLength(books);

    // The table: a real <table>, paged, every row reachable.
    const step = page.locator("article.step", { has: page.locator("figure.display.table") }).last();
    const table = step.locator("figure.display.table");
    await expect(table.locator("figcaption")).toContainText("Books by title");
    await expect(table.locator("figcaption")).toContainText(`${books} rows`);
    await expect(table.locator("table thead th")).toHaveText([/title/, /price/, /genre/]);
    await expect(table.locator("table tbody tr")).toHaveCount(Math.min(books, 25));
    const [first] = await query(page, "SELECT title FROM books ORDER BY title LIMIT 1");
    await expect(table.locator("table tbody tr").first().locator("td").first()).toHaveText(first.title);

    // The chart: drawn by Vega as SVG, with a bar per genre.
    const chart = step.locator("figure.display.chart");
    await expect(chart).toHaveAttribute("data-drawn", "");
    const genres = await query(page, "SELECT DISTINCT genre FROM books");
    expect(await chart.locator(".chart-canvas svg path, .chart-canvas svg rect").count()).toBeGreaterThanOrEqual(genres.length);
    await expect(chart.locator(".chart-canvas svg")).toContainText("fantasy");

    // Below the step's output; the output holds the summaries the model read.
    await expect(step.locator("pre.output")).toContainText('[table "Books by title" shown to the person');
    const feedback = JSON.stringify(model.requests[1].body.messages.at(-1));
    expect(feedback).toContain(`[table \\"Books by title\\" shown to the person: ${books} rows × 3 columns`);
    expect(feedback).toContain("more rows not printed here");
    expect(feedback).toContain('[bar chart \\"Books per genre\\" (books by genre)');
    // Every kind of chart compiled and drew, none fell back to its data.
    const charts = page.locator("figure.display.chart");
    await expect(charts).toHaveCount(7);
    for (let i = 0; i < 7; i++) await expect(charts.nth(i)).toHaveAttribute("data-drawn", "");
    await expect(charts.locator(".note")).toHaveCount(0);
    for (let i = 1; i < 7; i++) await charts.nth(i).screenshot({ path: screenshot(`display-kind-${i}.png`) });
    expect(errors).toEqual([]);
    await step.locator("pre.output").scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshot("display-table.png") });
    await chart.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshot("display-chart.png") });
  } finally {
    await model.close();
  }
});
