// Sites from `py-agent build` on a host that sends no special headers (`python3 -m http.server`,
// a stand-in for GitHub Pages): the page registers its service worker, reloads once, and from
// then on is cross-origin isolated (interrupts work in place) and its worker keeps the network
// wall; Python never starts before that holds. Then each site runs a turn: the bookshop (the
// demo build) through a fake model, the clinic example by replaying its recorded demo (and
// "Save as demo" gives that conversation back as a demo file), and a throwaway app built by
// the suite (sites.setup.ts) with its tool.
import { expect, test, type Page } from "@playwright/test";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { collectEvents, debugPython, DIST, events, query, scripted, startFakeModel, startRecorder, useFakeModel, waitForEvent } from "./helpers";
import { CLINIC, NOTES, openSite, plainServer, type Served } from "./sites";

let server: Served | null = null;
test.afterEach(async () => {
  await server?.stop();
  server = null;
});

/** The headers the page and worker.js came with, as the page sees them. */
async function servedHeaders(page: Page) {
  return page.evaluate(async () => {
    const worker = await fetch("worker.js", { cache: "no-store" });
    return {
      isolated: crossOriginIsolated,
      controlled: Boolean(navigator.serviceWorker.controller),
      workerCsp: worker.headers.get("content-security-policy"),
    };
  });
}

test("the bookshop on a plain static server: secured by its service worker, isolated, walled, and a turn runs", async ({ page }) => {
  server = await plainServer(DIST);
  const raw = await fetch(`${server.url}/worker.js`);
  expect(raw.headers.get("content-security-policy")).toBe(null); // the host sends nothing
  expect(raw.headers.get("cross-origin-embedder-policy")).toBe(null);
  const model = await startFakeModel(
    scripted(
      { message: "Adding the tag.", code: 'session.add(Tag(name="plain-host"))\nprint("saved")' },
      { message: "Saved.", code: "" },
      { message: "Looping.", code: "n = 0\nwhile True:\n    n += 1" },
      { message: "Stopped.", code: "" },
    ),
  );
  const recorder = await startRecorder();
  try {
    const { errors, loads, workersBeforeSecure } = await openSite(page, server.url);
    // The first load had no headers: the worker was not started, the page reloaded once.
    expect(workersBeforeSecure).toEqual([]);
    expect(loads()).toBe(2);
    const headers = await servedHeaders(page);
    expect(headers).toMatchObject({ isolated: true, controlled: true });
    expect(headers.workerCsp).toContain("connect-src 'self';");
    await collectEvents(page);

    // A turn through the fetch shim and a fake model.
    await useFakeModel(page, model);
    expect((await page.evaluate(() => (window as any).pyAgent.send("Add a tag called plain-host"))).reason).toBe("done");
    expect(await query(page, "SELECT name FROM tags WHERE name = 'plain-host'")).toEqual([{ name: "plain-host" }]);

    // Interrupts work in place (shared memory): Stop ends a runaway loop without restarting Python.
    void page.evaluate(() => (window as any).pyAgent.send("Count for ever"));
    await waitForEvent(page, "step_started", 2);
    await page.waitForTimeout(300);
    await page.evaluate(() => (window as any).pyAgent.stop());
    const result = (await waitForEvent(page, "execution_result", 2)) as any;
    expect(result.error).toContain("KeyboardInterrupt");
    expect(await page.evaluate(() => (window as any).pyAgent.restarts)).toBe(0);

    // The wall: past the validator, the worker still cannot reach another origin.
    const outcome = await debugPython(
      page,
      `import js\ntry:\n    await js.fetch("${recorder.origin}/escape")\n    result = "reached"\nexcept Exception as exc:\n    result = f"blocked: {exc}"`,
    );
    expect(outcome).toMatch(/^blocked/);
    await page.waitForTimeout(500);
    expect(recorder.hits).toEqual([]);
    expect(errors).toEqual([]);
  } finally {
    await model.close();
    await recorder.close();
  }
});

test("the clinic example replays its recorded demo, and Save as demo gives the conversation back", async ({ page }) => {
  server = await plainServer(CLINIC);
  const app = JSON.parse(fs.readFileSync(`${CLINIC}/app.json`, "utf8"));
  await openSite(page, server.url);
  await expect(page.locator("h1")).toHaveText("Clinic");
  // The recorded requests are the chips.
  await expect(page.locator("[data-suggestion]")).toHaveText(app.suggestions);
  await collectEvents(page);

  // No key: the recorded demo answers, its code really runs against this database.
  await page.locator("[data-suggestion]").first().click();
  await expect(page.locator(".turn-end").last()).toHaveText(/^Done/, { timeout: 60_000 });
  expect((await events(page, "message_delta")).length).toBeGreaterThan(3); // streamed
  const results = (await events(page, "execution_result")) as any[];
  expect(results.length).toBeGreaterThan(0);
  expect(results[0].error).toBeFalsy();
  expect(results[0].output.trim().length).toBeGreaterThan(0);
  // The recording's own last reply closed the turn.
  const recorded = JSON.parse(fs.readFileSync("examples/clinic/clinic/demo.json", "utf8")).turns[0].steps.at(-1).reply.message;
  expect(((await events(page, "assistant_reply")) as any[]).at(-1).message).toBe(recorded);

  // Save as demo: the conversation, as a demo file `py-agent build --demo` takes.
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Save as demo" }).click();
  const file = await (await download).path();
  const demo = JSON.parse(fs.readFileSync(file!, "utf8"));
  expect(demo.format).toBe("py-agent-demo");
  expect(demo.app).toBe("clinic");
  expect(demo.turns.map((t: any) => t.request)).toEqual([app.suggestions[0]]);
  // Python reads it as a demo (the format of py_agent.recording).
  const requests = execFileSync("python3", ["-c", "import sys; from py_agent.recording import Demo; print(Demo.load(sys.argv[1]).requests)", file!], { encoding: "utf8" });
  expect(requests).toContain(app.suggestions[0].slice(0, 20));
});

test("a throwaway app built by the suite boots on a plain server and its tool runs", async ({ page }) => {
  server = await plainServer(NOTES);
  const model = await startFakeModel(
    scripted(
      { message: "Shouting the urgent one.", code: "urgent = session.scalars(select(Note).where(Note.priority == Priority.HIGH)).one()\nurgent.text = shout(urgent.text)\nprint(urgent.text)" },
      { message: "Done.", code: "" },
    ),
  );
  try {
    await openSite(page, server.url);
    await expect(page.locator("h1")).toHaveText("Notes");
    await expect(page.locator("[data-suggestion]")).toHaveText(["Which notes are urgent?"]);
    await collectEvents(page);
    // Without a model, an app with no recorded demo says so and how to set one.
    expect((await page.evaluate(() => (window as any).pyAgent.send("Which notes are urgent?"))).reason).toBe("done");
    expect(((await events(page, "assistant_reply")) as any[])[0].message).toContain("has no recorded demo");

    await useFakeModel(page, model);
    expect((await page.evaluate(() => (window as any).pyAgent.send("Shout the urgent note"))).reason).toBe("done");
    expect(((await events(page, "execution_result")) as any[]).at(-1).output).toContain("CALL ADA!");
    expect(await query(page, "SELECT text, priority FROM notes ORDER BY id")).toEqual([
      { text: "buy milk", priority: "LOW" },
      { text: "CALL ADA!", priority: "HIGH" },
    ]);
    // The table browser shows the enum's label (app.json's enums reach the page).
    await page.locator(".table-tab", { hasText: "notes" }).click();
    await expect(page.locator("[data-rows]")).toContainText("high");
  } finally {
    await model.close();
  }
});
