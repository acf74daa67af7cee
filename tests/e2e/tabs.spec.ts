// One writer across tabs (issue 12.6). Two tabs of the same app share the browser's
// storage: only the tab that holds the app's lock runs Python and saves. A second tab
// says so and offers to take over; the first then saves, stops and says so. Back and
// forth, no committed row and no part of the conversation is lost.
import { expect, test, type Page } from "@playwright/test";
import { collectEvents, debugPython, events, openApp, query, send, startFakeModel, useFakeModel, waitForEvent } from "./helpers";

/** A model that adds the tag named in the request ("tag NAME"), then says it is done. */
function tagModel() {
  return startFakeModel((request) => {
    const last = request.body.messages.at(-1);
    const name = last.role === "user" ? /^tag (\S+)$/.exec(last.content)?.[1] : undefined;
    return name ? { message: `Adding ${name}.`, code: `session.add(Tag(name="${name}"))` } : { message: "Saved.", code: "" };
  });
}

const tags = (page: Page) => query(page, "SELECT name FROM tags WHERE name LIKE 'tab-%' ORDER BY name").then((rows) => rows.map((r) => r.name));
const conflicts = (page: Page) => events(page, "tab_conflict").then((list) => list.map((e) => e.state));
const requests = (page: Page) => debugPython(page, "result = [m.content for m in runtime.state.messages if m.kind == 'user']");

test("a second tab never overwrites the first: it asks, and the tabs hand over cleanly", async ({ context }) => {
  const model = await tagModel();
  try {
    const first = await context.newPage();
    await openApp(first);
    await useFakeModel(first, model);
    await collectEvents(first);
    expect((await send(first, "tag tab-a1")).reason).toBe("done");

    // The second tab sees the saved data but does not start Python or write.
    const second = await context.newPage();
    await second.goto("/?test&nosw");
    await second.waitForFunction(() => (window as any).pyAgent !== undefined);
    await collectEvents(second);
    await expect.poll(() => second.evaluate(() => (window as any).__agent.writer === false && !(window as any).__agent.worker)).toBe(true);
    await expect(second.locator("[data-banners]")).toContainText("open in another tab");
    expect(await tags(second)).toEqual(["tab-a1"]);
    const refused = await second.evaluate(() => (window as any).pyAgent.send("tag tab-b0").then(() => "sent", (e: Error) => e.message));
    expect(refused).toContain("in use in another tab");

    // The first tab goes on meanwhile; nothing the second tab holds is stale when it takes over.
    expect((await send(first, "tag tab-a2")).reason).toBe("done");
    await waitForEvent(first, "saved", 2);

    // Take over: the first tab saves, stops and says so; the second starts from what it saved.
    await second.evaluate(() => (window as any).__agent.takeOver());
    await expect.poll(() => conflicts(first)).toEqual(["taken-over"]);
    await expect(first.locator("[data-banners]")).toContainText("Another tab took over");
    expect(await first.evaluate(() => (window as any).__agent.worker)).toBe(null);
    expect(await first.evaluate(() => (window as any).pyAgent.send("tag tab-lost").then(() => "sent", (e: Error) => e.message))).toContain("in use in another tab");
    expect(await tags(second)).toEqual(["tab-a1", "tab-a2"]);
    expect(await requests(second)).toEqual(["tag tab-a1", "tag tab-a2"]);
    await expect(second.locator(".msg.user")).toHaveText(["tag tab-a1", "tag tab-a2"]);
    expect((await send(second, "tag tab-b1")).reason).toBe("done");
    await waitForEvent(second, "saved");

    // And back: the first tab takes over again and continues the same conversation.
    await first.evaluate(() => (window as any).__agent.takeOver());
    await expect.poll(async () => (await conflicts(second)).slice(-2)).toEqual(["resolved", "taken-over"]);
    expect(await tags(first)).toEqual(["tab-a1", "tab-a2", "tab-b1"]);
    expect(await requests(first)).toEqual(["tag tab-a1", "tag tab-a2", "tag tab-b1"]);
    expect((await send(first, "tag tab-a3")).reason).toBe("done");
    await expect.poll(async () => (await events(first, "saved")).filter((e) => e.db).length).toBeGreaterThanOrEqual(3);

    // A later visit sees everything from both tabs, in one conversation.
    await second.close();
    await first.close();
    const later = await context.newPage();
    await openApp(later);
    expect(await tags(later)).toEqual(["tab-a1", "tab-a2", "tab-a3", "tab-b1"]);
    expect(await requests(later)).toEqual(["tag tab-a1", "tag tab-a2", "tag tab-b1", "tag tab-a3"]);
  } finally {
    await model.close();
  }
});
