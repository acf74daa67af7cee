// A second visit works offline: the service worker precaches the whole site (the files
// build.json lists) and serves it when the server is gone, with the headers it was
// stored with, so the page is still cross-origin isolated and the worker keeps its CSP.
import { expect, test } from "@playwright/test";
import { openApp, query, send, startDevServer } from "./helpers";

test("after one visit the app boots and works with the server stopped", async ({ page }) => {
  const server = await startDevServer();
  try {
    await openApp(page, { base: server.url, query: "test" });
    await send(page, "Add Tolkien and two of his books");

    // Wait until the service worker controls the page and holds every file of the build.
    const files: string[] = (await (await page.request.get(`${server.url}/build.json`)).json()).files;
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 60_000 });
    await expect
      .poll(
        () =>
          page.evaluate(async () => {
            const name = (await caches.keys()).find((n) => n.startsWith("py-agent-")); // the site's (not the boot snapshot's)
            const cache = name ? await caches.open(name) : null;
            return cache ? (await cache.keys()).length : 0;
          }),
        { timeout: 60_000 },
      )
      .toBeGreaterThanOrEqual(files.length);

    await server.stop();
    await page.reload();
    await page.evaluate(() => (window as any).pyAgent.ready);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    expect(await query(page, "SELECT count(*) AS n FROM authors")).toEqual([{ n: 11 }]);
    await expect(page.locator(".msg.user")).toHaveText("Add Tolkien and two of his books");
    const end = await send(page, "Which customers bought nothing this year?");
    expect(end.reason).toBe("done");
    await expect(page.locator("pre.output").last()).toContainText("George Miller");
  } finally {
    await server.stop();
  }
});
