// Approval states that tell the truth (issue 12.7), with the recorded demo model and
// "Ask me before saving": while a step waits the client says so, a message typed
// meanwhile is queued and sent after the decision, a decline is answered as a decline,
// "allow for the rest of this conversation" stops the asking, and a reload never leaves
// a dangling question: the step is reported as discarded, to the person and the model.
import { expect, test } from "@playwright/test";
import { collectEvents, debugPython, events, openApp, query, startFakeModel, useFakeModel, waitForEvent } from "./helpers";

const TOLKIEN = "Add Tolkien and two of his books";
const authors = async (page: import("@playwright/test").Page) => (await query(page, "SELECT count(*) AS n FROM authors"))[0].n;

test("waiting, queued messages, a decline, and allow-for-the-rest", async ({ page }) => {
  await openApp(page);
  await page.evaluate(() => (window as any).pyAgent.configure({ approve: "ask" }));
  await collectEvents(page);

  const paused = await page.evaluate((text) => (window as any).pyAgent.send(text), TOLKIEN);
  expect(paused.reason).toBe("paused");
  expect(await page.evaluate(() => (window as any).__agent.pending?.step)).toBe(1);
  await expect(page.locator("[data-status]")).toHaveText("Waiting for your decision");

  // A message sent while the step waits is kept and sent after the decision.
  await page.evaluate(() => void (window as any).pyAgent.send("How many rows does each table have?"));
  expect((await waitForEvent(page, "queued")).text).toBe("How many rows does each table have?");
  expect(await events(page, "user_message")).toHaveLength(1);

  // Declined: rolled back, and the demo model does not claim success.
  const declined = await page.evaluate(() => (window as any).pyAgent.decide(false));
  expect(declined.reason).toBe("done");
  expect((await events(page, "approval_decision"))[0]).toMatchObject({ step: 1, approved: false });
  // (The queued message may already be on its way: look at the reply that followed the decline.)
  expect((await events(page, "assistant_reply")).find((e) => e.step === 2).message).toMatch(/^Understood: I did not save/);
  expect(await authors(page)).toBe(10);

  // Then the queued message went out on its own, and was answered.
  expect((await waitForEvent(page, "queue_sent")).text).toBe("How many rows does each table have?");
  await expect.poll(async () => (await events(page, "turn_end")).length).toBe(3);
  expect((await events(page, "user_message")).map((e) => e.content)).toEqual([TOLKIEN, "How many rows does each table have?"]);
  expect((await events(page, "turn_end")).at(-1).reason).toBe("done");

  // "Allow for the rest of this conversation": after one approval, later writes are not asked about.
  const model = await startFakeModel((request) => {
    const last = request.body.messages.at(-1).content as string;
    const name = /tag (\S+)/.exec(last)?.[1];
    return name ? { message: "Adding.", code: `session.add(Tag(name="${name}"))` } : { message: "Saved.", code: "" };
  });
  try {
    await useFakeModel(page, model, { approve: "ask" });
    expect((await page.evaluate(() => (window as any).pyAgent.send("tag first-one"))).reason).toBe("paused");
    expect((await page.evaluate(() => (window as any).pyAgent.decide(true, { remember: true }))).reason).toBe("done");
    expect((await events(page, "approval_decision")).at(-1)).toMatchObject({ approved: true, remember: true });
    const asked = (await events(page, "approval_required")).length;
    expect((await page.evaluate(() => (window as any).pyAgent.send("tag second-one"))).reason).toBe("done");
    expect((await events(page, "approval_required")).length).toBe(asked);
    await expect.poll(() => query(page, "SELECT name FROM tags WHERE name LIKE '%-one' ORDER BY name")).toEqual([{ name: "first-one" }, { name: "second-one" }]);
    expect(await debugPython(page, "result = runtime.state.auto_approve")).toBe(true);
  } finally {
    await model.close();
  }
});

test("after a reload, a step that waited is reported as discarded, never left open", async ({ page }) => {
  await openApp(page);
  await page.evaluate(() => (window as any).pyAgent.configure({ approve: "ask" }));
  await collectEvents(page);
  expect((await page.evaluate((text) => (window as any).pyAgent.send(text), TOLKIEN)).reason).toBe("paused");
  await waitForEvent(page, "saved"); // the paused turn's conversation is on disk
  await page.reload();

  await page.waitForFunction(() => (window as any).pyAgent !== undefined);
  await collectEvents(page);
  await page.evaluate(() => (window as any).pyAgent.ready);
  const discarded = await waitForEvent(page, "pending_discarded");
  expect(discarded.step).toBe(1);
  expect(await page.evaluate(() => (window as any).__agent.pending)).toBe(null);
  await expect(page.locator("[data-status]")).toHaveText("Ready");
  await expect(page.locator(".approval:not(.decided)")).toHaveCount(0);
  expect(await authors(page)).toBe(10);
  // The model was told, in the conversation that is saved.
  const note = await debugPython(page, "result = runtime.state.messages[-1].content");
  expect(note).toContain("were NOT saved");
  await expect.poll(async () => (await events(page, "saved")).length).toBeGreaterThan(0);

  // A new message goes through; the demo model answers the discard as a decline.
  const next = await page.evaluate(() => (window as any).pyAgent.send("How many rows does each table have?"));
  expect(next.reason).toBe("done");
  // Later visits: the saved transcript still says so, and no question can be answered.
  await page.reload();
  await page.evaluate(() => (window as any).pyAgent.ready);
  expect(await page.evaluate(() => (window as any).__agent.log.filter((e: any) => e.type === "pending_discarded").length)).toBe(1);
  await expect(page.locator(".approval button:enabled")).toHaveCount(0);
  expect(await debugPython(page, "result = runtime.state.discarded_step")).toBe(null);
  expect(await authors(page)).toBe(10);
});
