// Persistence: after each committed step the database file and the conversation are
// saved in IndexedDB; a reload restores both, in the replica before Python has booted
// and in Python itself.
import { expect, test } from "@playwright/test";
import { debugPython, openApp, query, send } from "./helpers";

test("a reload restores the database and the conversation", async ({ page }) => {
  await openApp(page);
  const end = await send(page, "Add Tolkien and two of his books");
  expect(end.reason).toBe("done");
  await expect(page.locator(".changes.committed")).toContainText("authors +1");

  await page.reload();
  // The saved database reaches the table browser before Python is ready.
  await expect(page.locator(".table-tab", { hasText: "authors" })).toContainText("11");
  await page.evaluate(() => (window as any).pyAgent.ready);
  await expect(page.locator("[data-status]")).toHaveText("Ready");

  // The transcript is back, and so is everything committed.
  await expect(page.locator(".msg.user")).toHaveText("Add Tolkien and two of his books");
  await expect(page.locator("pre.output").first()).toContainText("The Hobbit");
  expect(await query(page, "SELECT count(*) AS n FROM authors WHERE name = 'J. R. R. Tolkien'")).toEqual([{ n: 1 }]);

  // Python opened the saved file, not a fresh seed, and has the conversation.
  const worker = await debugPython(
    page,
    `import sqlite3
db = sqlite3.connect(runtime.db_path)
result = {
    "tolkien_books": db.execute("SELECT count(*) FROM books JOIN authors ON authors.id = books.author_id WHERE authors.name = 'J. R. R. Tolkien'").fetchone()[0],
    "messages": [m.kind for m in runtime.state.messages],
}`,
  );
  expect(worker.tolkien_books).toBe(2);
  expect(worker.messages.slice(0, 2)).toEqual(["user", "assistant"]);

  // The restored conversation goes on: the model sees the earlier turn.
  const next = await send(page, "How many rows does each table have?");
  expect(next.reason).toBe("done");
  await expect(page.locator("pre.output").last()).toContainText(/authors\s+11 rows/);
});

test("reset forgets the conversation and brings back the seed data", async ({ page }) => {
  await openApp(page);
  await send(page, "Add Tolkien and two of his books");
  await page.evaluate(() => (window as any).pyAgent.reset());
  await expect(page.locator("[data-welcome]")).toBeVisible();
  expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 10 }]);
  await page.reload();
  await page.evaluate(() => (window as any).pyAgent.ready);
  await expect(page.locator(".msg.user")).toHaveCount(0);
  expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 10 }]);
});
