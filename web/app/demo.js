// "Save as demo": a recorded demo built from the page's transcript, in the format of
// py_agent.recording (DemoRecorder's), so `py-agent build APP --demo FILE` can ship it and the
// site replays it when no model is set: its requests become the chips, its replies stream and
// its code really runs.
//
// Pure functions of the events (no DOM): tests run them under Node against the Python recorder.

export const FORMAT = "py-agent-demo";
export const VERSION = 1;

/**
 * A demo from transcript events (what AgentClient keeps in `log`): `user_message` starts a
 * turn, `assistant_reply` adds a step, `execution_result` with an error or `validation_failed`
 * marks the step as failed (the replay then shows the model's fix). Malformed replies are
 * left out; turns without a reply are dropped.
 */
export function demoFromEvents(events, { app = "", model = "", recordedAt = new Date() } = {}) {
  const turns = [];
  for (const event of events || []) {
    if (!event || typeof event !== "object") continue;
    if (event.type === "user_message") {
      turns.push({ request: String(event.content ?? ""), steps: [] });
    } else if (!turns.length) {
      continue;
    } else if (event.type === "assistant_reply") {
      const reply = { ...(event.extensions || {}), message: String(event.message ?? ""), code: String(event.code ?? "") };
      turns.at(-1).steps.push({ reply, failed: false });
      if (event.model && !model) model = String(event.model);
    } else if ((event.type === "execution_result" && event.error) || event.type === "validation_failed") {
      const steps = turns.at(-1).steps;
      if (steps.length) steps.at(-1).failed = true;
    }
  }
  return {
    format: FORMAT,
    version: VERSION,
    app,
    model,
    recorded_at: isoSeconds(recordedAt),
    turns: turns
      .filter((turn) => turn.steps.length)
      .map((turn) => ({
        request: turn.request,
        steps: turn.steps.map(({ reply, failed }) => (reply.code.trim() ? { reply, failed } : { reply })),
      })),
  };
}

/** How many turns a demo from these events would hold (the menu item is off at 0). */
export function recordedTurns(events) {
  return demoFromEvents(events).turns.length;
}

/** The demo as the file `py-agent chat --record` writes (indented JSON, a final newline). */
export function demoFile(demo) {
  return `${JSON.stringify(demo, null, 2)}\n`;
}

function isoSeconds(date) {
  // Like Python's datetime.isoformat(timespec="seconds") in UTC: 2026-11-20T10:00:00+00:00
  return `${date.toISOString().slice(0, 19)}+00:00`;
}
