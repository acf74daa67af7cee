// Boot: Pyodide starts in a module worker, installs the wheels from this origin,
// reports its progress, seeds the demo database and hands it to the sql.js replica.
import { expect, test } from "@playwright/test";
import { openApp, query, screenshot } from "./helpers";

test("boots Python in a worker, shows progress and the seeded tables", async ({ page }) => {
  const boots: any[] = [];
  await page.exposeFunction("__boot", (event: any) => boots.push(event));
  await page.addInitScript(() => {
    // Record boot events from the very start, before the app's own listeners.
    const timer = setInterval(() => {
      const api = (window as any).pyAgent;
      if (!api) return;
      clearInterval(timer);
      for (const type of ["boot", "booted", "ready"]) api.on(type, (e: any) => (window as any).__boot(e));
    }, 1);
  });
  const errors = await openApp(page);

  // Progress: every stage was reported, with a growing byte count that reached the wheels.
  const stages = [...new Set(boots.filter((e) => e.type === "boot").map((e) => e.stage))];
  expect(stages).toEqual(["runtime", "packages", "imports", "database"]);
  const last = boots.filter((e) => e.type === "boot").at(-1);
  expect(last.loaded).toBeGreaterThan(10e6); // the runtime and the wheels came through the counter
  expect(last.total).toBeGreaterThanOrEqual(last.loaded);
  const booted = boots.find((e) => e.type === "booted");
  expect(booted.isolated).toBe(true); // COOP/COEP: shared memory for interrupts
  const ready = boots.find((e) => e.type === "ready");
  expect(ready.restored).toBe(false);
  expect(ready.tables.authors).toBe(10);

  // The page is cross-origin isolated and the progress bar is gone.
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  await expect(page.locator("[data-boot]")).toBeHidden();

  // The replica holds the seeded rows and the table browser shows them.
  expect(await query(page, "SELECT count(*) AS n FROM books")).toEqual([{ n: 26 }]);
  await expect(page.locator(".table-tab", { hasText: "authors" })).toContainText("10");
  await expect(page.locator("[data-rows]")).toContainText("Jane Austen");
  await page.locator(".table-tab", { hasText: "customers" }).click();
  await expect(page.locator("[data-rows]")).toContainText("amira.haddad@example.com");
  await page.screenshot({ path: screenshot("ready.png") });
  expect(errors).toEqual([]);
});

test("the replica is read-only: host pages cannot write behind Python's back", async ({ page }) => {
  await openApp(page);
  const error = await page.evaluate(() => {
    try {
      (window as any).pyAgent.db.query("DELETE FROM authors");
      return "";
    } catch (e: any) {
      return e.message;
    }
  });
  expect(error).toMatch(/readonly|read-only|query_only/i);
  expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 10 }]);
});
