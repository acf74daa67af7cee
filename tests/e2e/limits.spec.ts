// Limits of a step in the browser (issue 12.5, 12.8): the time limit (the same 30 s as
// on CPython by default; 2 s here) stops runaway code with StepTimeout through the
// interrupt buffer, escalates to terminate-and-restore when the code ignores it, and is
// terminate-and-restore at once without cross-origin isolation. A step that allocates
// without bound ends with MemoryError, and Python goes on working; a worker that dies
// is noticed and restored without a reload. Every test checks the database afterwards.
import { expect, test, type Page } from "@playwright/test";
import {
  collectEvents, debugPython, events, openApp, PLAIN_PORT, query, runInWorker, startFakeModel, useFakeModel, waitForEvent,
  type Reply,
} from "./helpers";

const TAG: Reply = { message: "First a tag.", code: 'session.add(Tag(name="kept"))\nprint("saved")' };
const DONE: Reply = { message: "Done.", code: "" };
const COUNT: Reply = { message: "Counting.", code: 'print("tags", session.scalar(select(func.count()).select_from(Tag)))' };

/** A model that replies by the person's latest words: "<keyword> ..." picks a script. */
function byRequest(scripts: Record<string, Reply[]>) {
  const positions = new Map<string, number>();
  return startFakeModel((request) => {
    const users = request.body.messages.filter((m: any) => m.role === "user");
    const text = JSON.stringify(users);
    const key = Object.keys(scripts).findLast((k) => text.includes(`req:${k}`)) ?? "";
    const at = positions.get(key) ?? 0;
    positions.set(key, at + 1);
    return scripts[key]?.[at] ?? DONE;
  });
}

const tagsInPython = (page: Page) =>
  debugPython(page, 'import sqlite3\nresult = sqlite3.connect(runtime.db_path).execute("SELECT count(*) FROM tags WHERE name = \'kept\'").fetchone()[0]');

test("the time limit stops a step with StepTimeout, and restarts Python when the code ignores it", async ({ page }) => {
  const model = await byRequest({
    loop: [TAG, { message: "Looping.", code: "n = 0\nwhile True:\n    n += 1" }, { message: "That ran too long.", code: "" }],
    // One long C call (it never checks the interrupt flag): any such call would do.
    csum: [{ message: "A long computation in C.", code: "from decimal import Decimal, getcontext\ngetcontext().prec = 400_000\nprint(len(str(Decimal(2).sqrt())))" }],
    count: [COUNT, DONE],
  });
  try {
    await openApp(page);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    await useFakeModel(page, model);
    await page.evaluate(() => (window as any).pyAgent.configure({ timeout: 2 }));
    await collectEvents(page);

    // 1. Python code that checks the interrupt flag: StepTimeout in place, the turn goes on.
    const end = await page.evaluate(() => (window as any).pyAgent.send("req:loop then stop"));
    expect(end.reason).toBe("done");
    const result = (await events(page, "execution_result")).find((e) => e.step === 2);
    expect(result.error.split("\n").at(-1)).toBe("StepTimeout: the step ran longer than 2 s and was stopped");
    const started = (await events(page, "step_started")).find((e) => e.step === 2);
    expect(started).toMatchObject({ step: 2, timeout: 2 });
    const ended = (await events(page, "step_ended")).find((e) => e.step === 2);
    expect(ended.ms).toBeGreaterThanOrEqual(1900);
    expect(ended.ms).toBeLessThan(2000 + 2500); // before the escalation would have restarted Python
    expect(await page.evaluate(() => (window as any).pyAgent.restarts)).toBe(0);
    expect((await events(page, "assistant_reply")).at(-1).message).toBe("That ran too long.");
    // What the model read says so too, not "interrupted by the person".
    expect(await debugPython(page, "result = runtime.state.messages[4].content")).toContain("ran longer than 2 s");

    // 2. A long C call ignores the flag: after the grace period Python is restarted from the last commit.
    const lost = await page.evaluate(() => (window as any).pyAgent.send("req:csum please"));
    expect(lost.reason).toBe("aborted");
    const worker = await waitForEvent(page, "worker_lost");
    expect(worker.reason).toBe("timeout");
    expect(worker.message).toContain("ran longer than 2 s");
    await page.evaluate(() => (window as any).pyAgent.ready);
    expect(await page.evaluate(() => (window as any).pyAgent.restarts)).toBe(1);
    await expect(page.locator("[data-status]")).toHaveText("Ready");
    // The restored conversation tells the model what happened to that step; the data is intact.
    const told = await debugPython(page, "result = [m.content for m in runtime.state.messages if m.kind == 'result'][-1]");
    expect(told).toContain("StepTimeout: the step ran longer than 2 s and was stopped by restarting Python");
    expect(await tagsInPython(page)).toBe(1);
    expect(await query(page, "SELECT count(*) AS n FROM tags WHERE name = 'kept'")).toEqual([{ n: 1 }]);
    const next = await page.evaluate(() => (window as any).pyAgent.send("req:count the tags"));
    expect(next.reason).toBe("done");
    expect((await events(page, "execution_result")).at(-1).output).toBe("tags 6\n");
  } finally {
    await model.close();
  }
});

test("without isolation the step is ended at its limit by restarting Python", async ({ page }) => {
  const model = await byRequest({ loop: [TAG, { message: "Looping.", code: "while True:\n    pass" }], count: [COUNT, DONE] });
  try {
    await openApp(page, { base: `http://127.0.0.1:${PLAIN_PORT}` });
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(false);
    await useFakeModel(page, model);
    await page.evaluate(() => (window as any).pyAgent.configure({ timeout: 2 }));
    await collectEvents(page);
    const started = Date.now();
    const end = await page.evaluate(() => (window as any).pyAgent.send("req:loop"));
    expect(end.reason).toBe("aborted");
    expect(Date.now() - started).toBeGreaterThan(2000);
    expect((await waitForEvent(page, "worker_lost")).reason).toBe("timeout");
    const error = (await events(page, "error")).at(-1);
    expect(error.message).toBe("The step ran longer than 2 s, so Python was restarted to stop it.");
    expect(error.hint).toContain("nothing saved was lost");
    await page.evaluate(() => (window as any).pyAgent.ready);
    expect(await tagsInPython(page)).toBe(1);
    expect(await page.evaluate(() => (window as any).pyAgent.send("req:count"))).toMatchObject({ reason: "done" });
    expect((await events(page, "execution_result")).at(-1).output).toBe("tags 6\n");
  } finally {
    await model.close();
  }
});

test("a step that allocates without bound ends with MemoryError, and Python keeps working", async ({ page }) => {
  const model = await byRequest({
    huge: [TAG, { message: "One huge buffer.", code: "buffer = bytearray(2 * 10**9)" }, DONE],
    grow: [{ message: "Growing a list.", code: "hoard = []\nwhile True:\n    hoard.append(bytes(100_000))" }, DONE],
    count: [COUNT, DONE],
  });
  try {
    await openApp(page);
    await useFakeModel(page, model);
    await page.evaluate(() => (window as any).pyAgent.configure({ memoryLimit: 256 }));
    await collectEvents(page);

    expect(await page.evaluate(() => (window as any).pyAgent.send("req:huge"))).toMatchObject({ reason: "done" });
    const huge = (await events(page, "execution_result")).find((e) => e.step === 2);
    expect(huge.error).toMatch(/MemoryError/);
    expect(huge.error).toContain("the step needed more than the 256 MB of memory a step may use");

    expect(await page.evaluate(() => (window as any).pyAgent.send("req:grow"))).toMatchObject({ reason: "done" });
    const grown = (await events(page, "execution_result")).at(-1);
    expect(grown.error).toMatch(/MemoryError/);
    // The list lived in the namespace: it is dropped so the memory is free again.
    expect((await events(page, "notice")).at(-1).message).toContain("ran out of memory; its variables were cleared");
    expect(await debugPython(page, "result = 'hoard' in runtime.state.namespace")).toBe(false);

    // Later turns work (they failed with JSON parse errors before), on the same worker and data.
    for (let i = 0; i < 2; i++) {
      expect(await page.evaluate(() => (window as any).pyAgent.send("req:count again"))).toMatchObject({ reason: "done" });
      expect((await events(page, "execution_result")).at(-1).output).toBe("tags 6\n");
    }
    expect(await page.evaluate(() => (window as any).pyAgent.restarts)).toBe(0);
    expect(await events(page, "worker_lost")).toEqual([]);
    expect(await query(page, "SELECT count(*) AS n FROM tags WHERE name = 'kept'")).toEqual([{ n: 1 }]);
  } finally {
    await model.close();
  }
});

test("a worker that dies or breaks is noticed and restored from the last commit, without a reload", async ({ page }) => {
  const model = await byRequest({ tag: [TAG, DONE], count: [COUNT, DONE] });
  try {
    await openApp(page);
    await useFakeModel(page, model);
    await collectEvents(page);
    expect(await page.evaluate(() => (window as any).pyAgent.send("req:tag"))).toMatchObject({ reason: "done" });

    // Killed: the worker goes silent (as when the browser ends it); the next message notices,
    // restores Python from the saved state and is sent again.
    await runInWorker(page, "die.test.mjs", "export default (scope) => { setTimeout(() => scope.close()); return 'closing'; };");
    const answered = await page.evaluate(() => (window as any).pyAgent.send("req:count after the crash"));
    expect(answered.reason).toBe("done");
    expect((await events(page, "worker_lost"))[0]).toMatchObject({ reason: "crash" });
    expect((await events(page, "execution_result")).at(-1).output).toBe("tags 6\n");
    expect((await events(page, "user_message")).map((e) => e.content)).toContain("req:count after the crash");

    // Broken: Python answers with something unreadable (what a MemoryError used to leave behind).
    await runInWorker(page, "break.test.mjs", "export default (scope) => { setTimeout(() => scope.postMessage({ type: 'worker_broken', reason: 'memory', message: 'simulated' })); return 1; };");
    await expect.poll(async () => (await events(page, "worker_lost")).length).toBe(2);
    expect((await events(page, "worker_lost"))[1].reason).toBe("memory");
    await page.evaluate(() => (window as any).pyAgent.ready);
    expect(await page.evaluate(() => (window as any).pyAgent.restarts)).toBe(2);
    expect(await tagsInPython(page)).toBe(1);
    expect(await page.evaluate(() => (window as any).pyAgent.send("req:count"))).toMatchObject({ reason: "done" });
    // The transcript keeps the notes (they are part of the saved log).
    await expect(page.locator("[data-status]")).toHaveText("Ready");
  } finally {
    await model.close();
  }
});
