// A chat turn, two ways: through the recorded demo model (no key), and through the
// real provider path: the worker's OpenAI provider -> postMessage -> the page's fetch
// shim -> a fake model server on loopback, streaming server-sent events.
import { expect, test } from "@playwright/test";
import { collectEvents, debugPython, events, openApp, query, screenshot, scripted, startFakeModel, useFakeModel } from "./helpers";

test("the recorded demo model streams a reply whose code really runs", async ({ page }) => {
  await openApp(page);
  await collectEvents(page);
  await page.getByRole("button", { name: "Add Tolkien and two of his books" }).click();
  await expect(page.locator(".turn-end").last()).toHaveText(/^Done · 2 steps/);

  // Streamed: the message and the code arrived in pieces before the whole reply.
  expect((await events(page, "message_delta")).length).toBeGreaterThan(3);
  expect((await events(page, "code_delta")).length).toBeGreaterThan(3);

  const step = page.locator("article.step").first();
  await expect(step.locator("figure.code")).toContainText('tolkien = Author(name=name');
  await expect(step.locator("pre.output")).toContainText("The Hobbit (1937)");
  await expect(step.locator(".changes.committed")).toContainText("books +2");

  // The rows exist in the replica and in Python's database.
  expect(await query(page, "SELECT b.title FROM books b JOIN authors a ON a.id = b.author_id WHERE a.name = 'J. R. R. Tolkien' ORDER BY b.published")).toEqual([
    { title: "The Hobbit" },
    { title: "The Fellowship of the Ring" },
  ]);
  expect(await debugPython(page, "import sqlite3\nresult = sqlite3.connect(runtime.db_path).execute(\"SELECT count(*) FROM books\").fetchone()[0]")).toBe(28);
  await page.screenshot({ path: screenshot("demo-turn.png") });

  // A question the recording answers with a query.
  await page.getByPlaceholder(/Ask something/).fill("Which customers bought nothing this year?");
  await page.keyboard.press("Enter");
  await expect(page.locator(".turn-end")).toHaveCount(2);
  await expect(page.locator("pre.output").last()).toContainText("George Miller");
});

test("a turn through the fetch shim reaches the model server and runs its code", async ({ page }) => {
  const model = await startFakeModel(
    scripted(
      { message: "Adding the tag.", code: 'session.add(Tag(name="e2e-shim"))\nsession.flush()\nprint("tags:", session.scalar(select(func.count()).select_from(Tag)))' },
      { message: "The tag **e2e-shim** is saved.", code: "" },
    ),
  );
  try {
    await openApp(page);
    await useFakeModel(page, model, { key: "sk-test-shim" });
    await page.getByPlaceholder(/Ask something/).fill("Add a tag called e2e-shim");
    await page.getByRole("button", { name: "Send" }).click();
    await expect(page.locator(".turn-end").last()).toHaveText(/^Done · 2 steps/);

    // The server saw two streamed chat-completions requests with the key the page added.
    expect(model.requests).toHaveLength(2);
    expect(model.requests[0].headers.authorization).toBe("Bearer sk-test-shim");
    expect(model.requests[0].body.model).toBe("fake-model");
    expect(model.requests[0].body.stream).toBe(true);
    expect(model.requests[0].body.messages.at(-1)).toEqual({ role: "user", content: "Add a tag called e2e-shim" });
    // The second request carries the first step's output back to the model.
    expect(JSON.stringify(model.requests[1].body.messages)).toContain("tags: 6");

    await expect(page.locator("pre.output").last()).toHaveText("tags: 6");
    await expect(page.locator(".step .text").last()).toContainText("is saved");
    expect(await query(page, "SELECT name FROM tags WHERE name = 'e2e-shim'")).toEqual([{ name: "e2e-shim" }]);
  } finally {
    await model.close();
  }
});

test("asking before saving: the step waits for approval, and a decline rolls it back", async ({ page }) => {
  const model = await startFakeModel((request) => {
    // Decide by the person's latest words: this model serves two requests.
    const text = JSON.stringify(request.body.messages);
    const last = request.body.messages.at(-1).content as string;
    if (last.startsWith("Add tag")) return { message: "Adding it.", code: `session.add(Tag(name="${last.split(" ").pop()}"))` };
    return { message: text.includes("declined") ? "Understood, nothing saved." : "Saved.", code: "" };
  });
  try {
    await openApp(page);
    await useFakeModel(page, model, { approve: "ask" });

    await page.getByPlaceholder(/Ask something/).fill("Add tag approved-one");
    await page.keyboard.press("Enter");
    const approval = page.locator(".approval:not(.decided)");
    await expect(approval).toContainText("Save these changes");
    await expect(page.locator(".changes.pending").last()).toContainText("tags +1");
    expect(await query(page, "SELECT count(*) AS n FROM tags WHERE name = 'approved-one'")).toEqual([{ n: 0 }]);
    await page.screenshot({ path: screenshot("approval.png") });
    // The status tells the truth: the agent waits for the person (issue 12.7).
    await expect(page.locator("[data-status]")).toHaveText("Waiting for your decision");
    // A message typed meanwhile is kept, shown as queued, and sent after the decision.
    await collectEvents(page);
    await page.evaluate(() => void (window as any).pyAgent.send("Something else"));
    await expect(page.locator(".msg.user.queued")).toContainText("Something else");
    expect((await events(page, "queued")).map((e) => e.text)).toEqual(["Something else"]);
    await approval.getByRole("button", { name: "Save changes" }).click();
    await expect(page.locator(".approval.decided")).toHaveText(/You saved these changes/);
    await expect(page.locator(".approval.decided button.chosen")).toHaveText("Save changes");
    await expect(page.locator(".changes.committed").last()).toContainText("tags +1");
    await expect(page.locator(".msg.user.queued")).toHaveCount(0);
    await expect(page.locator("[data-log] .msg.user").last()).toHaveText("Something else");
    await expect(page.locator(".turn-end")).toHaveCount(3); // paused, done after the decision, the queued message
    await expect(page.locator(".turn-end").last()).toHaveText(/^Done/);
    await expect.poll(() => query(page, "SELECT count(*) AS n FROM tags WHERE name = 'approved-one'")).toEqual([{ n: 1 }]);

    await page.getByPlaceholder(/Ask something/).fill("Add tag declined-one");
    await page.keyboard.press("Enter");
    await page.locator(".approval:not(.decided)").getByRole("button", { name: "Decline" }).click();
    await expect(page.locator(".changes.declined").last()).toContainText("tags +1");
    await expect(page.locator(".step .text").last()).toHaveText("Understood, nothing saved.");
    expect(await query(page, "SELECT count(*) AS n FROM tags WHERE name = 'declined-one'")).toEqual([{ n: 0 }]);
    expect(await debugPython(page, "import sqlite3\nresult = sqlite3.connect(runtime.db_path).execute(\"SELECT count(*) FROM tags WHERE name = 'declined-one'\").fetchone()[0]")).toBe(0);
  } finally {
    await model.close();
  }
});

test("a model endpoint that is down gives an error that says what to do", async ({ page }) => {
  const model = await startFakeModel(scripted());
  await model.close(); // nothing listens there any more
  await openApp(page);
  await useFakeModel(page, model, { key: "sk-x" });
  await page.getByPlaceholder(/Ask something/).fill("hello?");
  await page.keyboard.press("Enter");
  const error = page.locator(".note.error").last();
  await expect(error).toContainText(/Nothing answered at http:\/\/127\.0\.0\.1/);
  await expect(error.locator(".hint")).toContainText(/base URL/i);
  await expect(page.locator(".turn-end").last()).toHaveText(/error/i);
});
