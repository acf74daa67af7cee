// Every request the browser makes, page, worker and service worker alike, goes to the
// app's own origin or to the configured model endpoint: no CDN, no telemetry, nothing else.
import { expect, test } from "@playwright/test";
import { openApp, scripted, send, startFakeModel, useFakeModel } from "./helpers";

test("no request leaves localhost except to the configured model endpoint", async ({ page, context }) => {
  const urls: string[] = [];
  context.on("request", (request) => urls.push(request.url()));
  const model = await startFakeModel(scripted({ message: "Counting.", code: "print(session.scalar(select(func.count()).select_from(Tag)))" }, { message: "Done.", code: "" }));
  try {
    await openApp(page, { query: "test" }); // with the service worker, as a person gets it
    const appOrigin = new URL(page.url()).origin;
    await page.getByRole("button", { name: "Add Tolkien and two of his books" }).click(); // the demo model
    await expect(page.locator(".turn-end").last()).toHaveText(/^Done/);
    await useFakeModel(page, model, { key: "sk-origins" });
    await send(page, "How many tags are there?");
    await expect(page.locator(".turn-end")).toHaveCount(2);

    const origins = new Set(urls.filter((u) => /^https?:/.test(u)).map((u) => new URL(u).origin));
    expect([...origins].sort()).toEqual([appOrigin, model.origin].sort());
    // The worker's own downloads are in the list, so worker traffic is really observed.
    expect(urls.some((u) => u.includes("/wheels/") && u.endsWith(".whl"))).toBe(true);
    expect(urls.some((u) => u.includes("/pyodide/pyodide.asm.wasm"))).toBe(true);
    expect(model.requests.length).toBe(2);
  } finally {
    await model.close();
  }
});
