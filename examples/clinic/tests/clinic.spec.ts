// An end-to-end test of the clinic's built site, as another project would write one for its
// own app. It uses only py-agent's public surface:
//   * the site from `py-agent build examples/clinic/clinic --out DIR`, served by any static server;
//   * a fake model server from `python -m py_agent.testing.fake_server` (the OpenAI wire format,
//     streaming, CORS), scripted over HTTP (POST /_fake/replies, GET /_fake/requests);
//   * the page's testing surface `window.pyAgent`: ready, configure, send, db.query, on.
// See examples/clinic/playwright.config.ts for the two web servers.
import { expect, test, type Page } from "@playwright/test";

const FAKE_MODEL = process.env.FAKE_MODEL_URL || "http://127.0.0.1:47991";

/** Queue the fake model's next replies (each a {message, code} object, as a model writes them). */
async function script(...replies: { message: string; code: string }[]) {
  await fetch(`${FAKE_MODEL}/_fake/reset`, { method: "POST" });
  const response = await fetch(`${FAKE_MODEL}/_fake/replies`, { method: "POST", body: JSON.stringify(replies) });
  expect(response.ok).toBe(true);
}

/** Open the site and wait for Python; a first visit on a plain host reloads once by itself. */
async function boot(page: Page) {
  await page.goto("/");
  for (let attempt = 0; ; attempt++) {
    try {
      await page.waitForFunction(() => "pyAgent" in window);
      await page.evaluate(() => (window as any).pyAgent.ready);
      return;
    } catch (error) {
      // The first load went away (the reload that puts the site's headers in place): wait again.
      if (attempt > 2 || !/context was destroyed|navigat/i.test(String(error))) throw error;
    }
  }
}

test("a turn against a fake model changes the clinic's database", async ({ page }) => {
  await script(
    {
      message: "I'll find Alan Turing's next appointment and mark it done.",
      code: [
        "alan = session.scalars(select(Patient).where(Patient.name == 'Alan Turing')).one()",
        "visit = session.scalars(select(Appointment).where(Appointment.patient_id == alan.id,",
        "                        Appointment.status == AppointmentStatus.BOOKED).order_by(Appointment.starts_at)).first()",
        "visit.status = AppointmentStatus.DONE",
        "print(visit.id, visit.starts_at)",
      ].join("\n"),
    },
    { message: "Done: his next appointment is marked as done.", code: "" },
  );
  await boot(page);
  const before = await page.evaluate(() =>
    (window as any).pyAgent.db.query(
      "SELECT count(*) AS n FROM appointments a JOIN patients p ON p.id = a.patient_id WHERE p.name = 'Alan Turing' AND a.status = 'DONE'",
    ),
  );

  // Point the app at the fake model (what a person does in Settings), then run one turn.
  await page.evaluate((baseUrl) => (window as any).pyAgent.configure({ provider: "openai-compatible", model: "fake", baseUrl }), `${FAKE_MODEL}/v1`);
  const end = await page.evaluate(() => (window as any).pyAgent.send("Mark Alan Turing's next visit as done"));
  expect(end.reason).toBe("done");

  // The change is in the page's copy of the database (sql.js), which Python wrote.
  const after = await page.evaluate(() =>
    (window as any).pyAgent.db.query(
      "SELECT count(*) AS n FROM appointments a JOIN patients p ON p.id = a.patient_id WHERE p.name = 'Alan Turing' AND a.status = 'DONE'",
    ),
  );
  expect(after[0].n).toBe(before[0].n + 1);

  // The model saw the schema in its prompt and the step's output came back to it.
  const requests = await (await fetch(`${FAKE_MODEL}/_fake/requests`)).json();
  expect(requests).toHaveLength(2);
  expect(JSON.stringify(requests[0])).toContain("Appointment");
  await expect(page.getByText("Done: his next appointment is marked as done.", { exact: true })).toBeVisible();
});
