// Accessibility: axe-core (from npm) finds no serious or critical violation on the main
// page when it has booted, while chatting (code, output, changes, a shown table) and while
// a step waits for approval, at desktop (1280×800) and phone (390×844) sizes. Screenshots
// of each state are attached to the test run.
import { expect, test, type Page, type TestInfo } from "@playwright/test";
import { readFile } from "node:fs/promises";
import { openApp, startFakeModel, useFakeModel } from "./helpers";

const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };

/** Serious and critical violations axe finds on the page as it is (WCAG 2.x A and AA rules and best practices). */
async function violations(page: Page, testInfo: TestInfo, state: string) {
  // Evaluated through the debugging protocol, so the page's CSP does not apply to it.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(await readFile(require.resolve("axe-core/axe.min.js"), "utf8"));
  const results = await page.evaluate(() => (window as any).axe.run(document, { resultTypes: ["violations"] }));
  const bad = results.violations
    .filter((v: any) => v.impact === "serious" || v.impact === "critical")
    .map((v: any) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n: any) => n.target.join(" ")).slice(0, 5) }));
  await testInfo.attach(`axe-${state}.json`, { body: JSON.stringify(results.violations, null, 1), contentType: "application/json" });
  return bad;
}

async function check(page: Page, testInfo: TestInfo, state: string) {
  for (const [size, viewport] of Object.entries(SIZES)) {
    await page.setViewportSize(viewport);
    await page.waitForTimeout(300); // the drawer and menu settle after a resize
    await testInfo.attach(`${state}-${size}.png`, { body: await page.screenshot(), contentType: "image/png" });
    expect(await violations(page, testInfo, `${state}-${size}`), `${state} at ${size} size`).toEqual([]);
  }
  await page.setViewportSize(SIZES.desktop);
}

test("no serious or critical accessibility violations: booted, chatting, waiting for approval", async ({ page }, testInfo) => {
  test.setTimeout(180_000);
  await openApp(page);
  await check(page, testInfo, "booted");

  await page.getByRole("button", { name: "Add Tolkien and two of his books" }).click();
  await expect(page.locator(".turn-end")).toHaveText(/^Done/);
  await page.evaluate(() =>
    (window as any).__agent.emit({
      type: "display", step: 1, kind: "table", title: "Tolkien's books", columns: ["title", "published"],
      rows: [["The Hobbit", "1937-09-21"], ["The Fellowship of the Ring", "1954-07-29"]], total: 2, truncated: false, spec: null,
    }),
  );
  await check(page, testInfo, "chatting");

  const model = await startFakeModel(() => ({ message: "Adding the tag **a11y**.", code: 'session.add(Tag(name="a11y"))' }));
  try {
    await useFakeModel(page, model, { approve: "ask" });
    await page.evaluate(() => void (window as any).pyAgent.send("Add a tag called a11y"));
    await expect(page.locator(".approval:not(.decided)")).toBeVisible();
    await expect(page.locator("[data-status]")).toHaveText("Waiting for your decision");
    await check(page, testInfo, "approval");
  } finally {
    await model.close();
  }
});
