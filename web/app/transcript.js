// Renders the agent's events as a conversation: the person's messages, each step's
// streamed text and code, its output (streamed while it runs), what it showed (tables,
// charts), its changes row by row, approvals, undo, errors and the turn's end.
//
// Model text is only ever inserted as text, or as HTML that DOMPurify has cleaned
// (markdown.js, loaded when the first model message arrives; until then, plain text).

import { renderDisplay } from "./display.js";
import { cellText, copyText, el } from "./grid.js";

const PHASES = {
  completion: "Thinking",
  validation: "Checking the code",
  execution: "Running",
  approval: "Waiting for your decision",
};

const STATUS = {
  committed: "committed · saving…",
  saved: "saved",
  pending: "not saved yet",
  declined: "declined, rolled back",
  rolled_back: "rolled back",
};

const ENDINGS = {
  done: "Done",
  exceeded: "Stopped: too many steps for one request",
  paused: "Paused for your decision",
  aborted: "Stopped",
  error: "Ended with an error",
};

// The markdown renderer, once loaded (see markdown.js).
let rich = null;
let richLoading = null;
function loadRich() {
  richLoading ??= import("./markdown.js").then((module) => (rich = module));
  return richLoading;
}

export class Transcript {
  /**
   * @param root     the log element (holds [data-welcome])
   * @param options  {onDecide(approved, {remember}), onUndo(pointId), announce(text), showTokens(),
   *                 format(table, column, value) -> text (enum labels, money) for row previews}
   */
  constructor(root, options = {}) {
    this.root = root;
    this.options = options;
    this.welcome = root.querySelector("[data-welcome]");
    this.clear();
  }

  clear() {
    this.root.replaceChildren(...(this.welcome ? [this.welcome] : []));
    if (this.welcome) this.welcome.hidden = false;
    this.turn = null; // the current turn's element (a paused turn stays open)
    this.lastTurn = null;
    this.steps = new Map(); // event step number -> step view, for the current turn
    this.lastMessage = null; // the last step with a message, for the announcement at the turn's end
    for (const step of this.timers ?? []) clearInterval(step.timer);
    this.timers = new Set();
  }

  /** Render one event; `live` is false when replaying a saved transcript. */
  render(event, live = true) {
    const handler = this[`on_${event.type}`];
    if (!handler) return;
    // Follow the conversation unless the person has scrolled up to read.
    const follow = this.root.scrollHeight - this.root.scrollTop - this.root.clientHeight < 120;
    if (this.welcome && !QUIET.has(event.type)) this.welcome.hidden = true;
    try {
      handler.call(this, event, live);
    } catch (error) {
      // One event the page cannot draw must not cost the rest of the conversation.
      console.error("py-agent: could not show an event", event, error);
    }
    if (live && follow) this.root.scrollTop = this.root.scrollHeight;
  }

  // --- containers ----------------------------------------------------------------------------

  ensureTurn() {
    if (!this.turn) {
      this.turn = el("div", { class: "turn" });
      this.root.append(this.turn);
      this.lastTurn = this.turn;
    }
    return this.turn;
  }

  step(number) {
    let step = this.steps.get(number);
    if (!step) {
      const phase = el("span", { class: "phase" });
      const ordinal = this.steps.size + 1; // numbered within the turn, like the turn's footer
      const node = el(
        "article",
        { class: "step", "data-step": String(number), "aria-label": `Step ${ordinal}` },
        el("header", { class: "step-head" }, el("span", { class: "who" }, "Assistant"), el("span", { class: "badge" }, `step ${ordinal}`), phase),
      );
      step = { number, node, phase, text: null, code: null, message: "", codeText: "", live: null };
      this.steps.set(number, step);
      this.ensureTurn().append(node);
    }
    return step;
  }

  setPhase(step, name) {
    if (name !== PHASES.execution) this.stopTimer(step);
    step.phase.textContent = name ? `${name}…` : "";
    step.phase.classList.toggle("busy", Boolean(name));
  }

  /** "Running… 4 s" while a step's code runs (and its limit when the worker said). */
  startTimer(step, { at, timeout } = {}) {
    this.stopTimer(step);
    step.startedAt = typeof at === "number" ? at : Date.parse(at) || Date.now();
    if (timeout) step.timeout = timeout;
    const tick = () => {
      const seconds = Math.max(0, Math.floor((Date.now() - step.startedAt) / 1000));
      step.phase.textContent = `Running… ${seconds} s${step.timeout ? ` (limit ${step.timeout} s)` : ""}`;
    };
    step.phase.classList.add("busy", "timed");
    tick();
    step.timer = setInterval(tick, 1000);
    this.timers.add(step);
  }

  stopTimer(step) {
    if (!step.timer) return;
    clearInterval(step.timer);
    step.timer = null;
    step.phase.classList.remove("timed");
    this.timers.delete(step);
  }

  setText(step, text) {
    step.message = text;
    if (!step.text) {
      step.text = el("div", { class: "text" });
      step.node.querySelector(".step-head").after(step.text);
    }
    if (rich) step.text.replaceChildren(rich.renderMarkdown(text));
    else {
      step.text.replaceChildren(...paragraphs(text));
      loadRich().then(() => step.text.replaceChildren(rich.renderMarkdown(step.message)), () => {});
    }
  }

  setCode(step, code) {
    if (!code) return;
    step.codeText = code;
    if (!step.code) {
      step.code = el("code", { class: "hljs language-python" });
      const copy = el("button", { type: "button", class: "ghost small copy", "aria-label": "Copy the code" }, "Copy");
      copy.addEventListener("click", () => copyText(step.codeText, copy));
      step.node.append(el("figure", { class: "code" }, el("figcaption", {}, el("span", {}, "Python"), copy), el("pre", { tabindex: "0" }, step.code)));
    }
    if (rich) step.code.replaceChildren(rich.highlight(code, "python"));
    else {
      step.code.textContent = code;
      loadRich().then(() => step.code.replaceChildren(rich.highlight(step.codeText, "python")), () => {});
    }
  }

  endSteps() {
    for (const step of this.steps.values()) this.setPhase(step, "");
  }

  // --- the person's messages -----------------------------------------------------------------

  /** A message typed while the agent cannot take it yet; it is sent later (see app.js). */
  queue(text, why = "it will be sent when the agent is free") {
    if (this.welcome) this.welcome.hidden = true;
    const bubble = el("div", { class: "msg user queued", "data-queued": "" }, el("div", { class: "bubble" }, text), el("p", { class: "queued-note" }, `Queued: ${why}.`));
    bubble.dataset.text = text;
    this.root.append(bubble);
    this.root.scrollTop = this.root.scrollHeight;
  }

  /** Move the queued messages after everything else (after a saved log was drawn above them). */
  keepQueueLast() {
    this.root.append(...this.root.querySelectorAll("[data-queued]"));
  }

  /** Drop a queued message that will not be sent. */
  unqueue(text) {
    [...this.root.querySelectorAll("[data-queued]")].find((b) => b.dataset.text === text)?.remove();
  }

  on_queued(event) {
    if ([...this.root.querySelectorAll("[data-queued]")].some((b) => b.dataset.text === event.text)) return;
    this.queue(event.text, event.reason ? `it will be sent ${event.reason}` : undefined);
  }

  /** A queued message is on its way (its user_message replaces the bubble). */
  markSending(text) {
    const bubble = [...this.root.querySelectorAll("[data-queued]")].find((b) => b.dataset.text === text);
    if (bubble) bubble.querySelector(".queued-note").textContent = "Sending…";
  }

  on_user_message(event) {
    this.unqueue(event.content);
    this.turn = null;
    this.steps = new Map();
    this.root.append(el("div", { class: "msg user" }, el("div", { class: "bubble" }, ...paragraphs(event.content))));
    this.ensureTurn();
  }

  // --- a step --------------------------------------------------------------------------------

  on_signal(event, live) {
    if (!live || !PHASES[event.signal]) return;
    const step = this.step(event.step);
    if (event.signal === "execution") this.startTimer(step);
    else this.setPhase(step, PHASES[event.signal]);
  }

  on_step_started(event) {
    const step = this.step(event.step);
    this.startTimer(step, { at: event.at, timeout: event.timeout });
  }

  on_step_ended(event) {
    const step = this.steps.get(event.step);
    if (step) this.stopTimer(step);
  }

  on_message_delta(event) {
    const step = this.step(event.step);
    this.setText(step, step.message + event.text);
  }

  on_code_delta(event) {
    const step = this.step(event.step);
    this.setCode(step, step.codeText + event.text);
  }

  on_assistant_reply(event) {
    const step = this.step(event.step);
    if (event.message) {
      this.setText(step, event.message);
      this.lastMessage = step; // announced when the turn ends, as rendered text
    }
    this.setCode(step, event.code);
    this.setPhase(step, event.code ? PHASES.validation : "");
  }

  on_malformed_reply(event) {
    const step = this.step(event.step);
    this.setPhase(step, "");
    step.node.append(note("warn", "The reply could not be read, so the model was asked again.", event.problem));
  }

  on_reply_truncated(event) {
    const step = this.step(event.step);
    const why = event.reason === "max_tokens" ? `The reply was cut off at the model's output limit${event.limit ? ` (${event.limit} tokens)` : ""}` : "The reply was too long to read";
    const next = event.retry_with ? `, so it was asked again with a limit of ${event.retry_with} tokens.` : ", so the model was asked for a shorter one.";
    step.node.append(note("warn", `${why}${next}`, event.message));
  }

  on_validation_failed(event) {
    const step = this.step(event.step);
    this.setPhase(step, "");
    step.node.append(note("warn", "The code was refused before it ran.", event.message));
  }

  /** Output while the step runs; execution_result replaces it with the whole output. */
  on_output_delta(event) {
    const step = this.step(event.step);
    if (!step.live) {
      step.live = el("pre", { class: "output live" });
      step.node.append(el("div", { class: "result live" }, el("div", { class: "label" }, "Output so far"), step.live));
    }
    step.live.textContent += event.text;
    step.live.scrollTop = step.live.scrollHeight;
  }

  on_execution_result(event) {
    const step = this.step(event.step);
    this.setPhase(step, "");
    step.live?.parentElement.remove();
    step.live = null;
    const took = event.duration_ms >= 1000 ? `${(event.duration_ms / 1000).toFixed(1)} s` : `${Math.round(event.duration_ms)} ms`;
    const label = `Output · ${took}${event.truncated ? " · shortened" : ""}`;
    const blocks = [];
    if (event.output || !event.error) blocks.push(el("pre", { class: "output", tabindex: "0" }, event.output || "(nothing printed)"));
    if (event.error) blocks.push(el("pre", { class: "output error", tabindex: "0" }, event.error));
    const copy = el("button", { type: "button", class: "ghost small copy", "aria-label": "Copy the output" }, "Copy");
    copy.addEventListener("click", () => copyText([event.output, event.error].filter(Boolean).join("\n"), copy));
    // Displays shown while the step ran stay below its output.
    const result = el("div", { class: "result" }, el("div", { class: "label" }, el("span", {}, label), copy), ...blocks);
    const firstDisplay = step.node.querySelector(":scope > figure.display");
    if (firstDisplay) firstDisplay.before(result);
    else step.node.append(result);
  }

  /** A call of one of the app's tools (or a gated call) made by the step's code. */
  on_tool_call(event) {
    const step = this.step(event.step);
    const id = `tool-${event.step}-${event.id ?? event.name}`;
    const args = JSON.stringify(event.arguments ?? {});
    const took = typeof event.duration_ms === "number" ? ` · ${Math.round(event.duration_ms)} ms` : "";
    const line = el(
      "div",
      { class: `tool-call ${event.status}`, "data-tool-call": id },
      el("code", {}, `${event.name}(${args.length > 120 ? `${args.slice(0, 119)}…` : args.slice(1, -1)})`),
      el("span", { class: "muted small" }, ` ${TOOL_STATUS[event.status] ?? event.status}${took}`),
    );
    if (event.error) line.append(el("p", { class: "hint" }, event.error));
    const old = step.node.querySelector(`[data-tool-call="${CSS.escape(id)}"]`);
    if (old) old.replaceWith(line);
    else step.node.append(line);
  }

  on_pending_discarded(event) {
    // Also replayed from a saved log: the card must say why it has no decision.
    this.discardApproval(event.step);
    (this.turn ?? this.root).append(
      note("warn", "A step that was waiting for your decision could not be restored after the reload, so it was discarded. Nothing from it was saved."),
    );
  }

  on_worker_lost(event) {
    (this.turn ?? this.root).append(note("warn", event.message || "Python stopped and was restored from the last saved state."));
  }

  on_display(event) {
    this.step(event.step).node.append(renderDisplay(event));
  }

  on_changes(event, live) {
    const step = this.step(event.step);
    const status = event.status === "committed" && !live ? "saved" : event.status;
    const box = el(
      "div",
      { class: `changes ${event.status}${status === "saved" ? " saved" : ""}`, "data-step": String(event.step) },
      el("span", { class: "label" }, `Changes ${STATUS[status] || event.status}`),
      ...countChips(event.tables),
    );
    step.node.append(box);
    // A waiting step's rows are in its approval card; the others get theirs here.
    if (event.rows && event.status !== "pending") step.node.append(rowDetails(event.rows, event.tables, "Show the rows", false, this.options.format));
  }

  on_approval_required(event, live) {
    const step = this.step(event.step);
    this.setPhase(step, "");
    const kind = event.kind || "write";
    const { question, buttons } = approvalText(kind, event);
    const box = el("div", { class: "approval", "data-approval": String(event.step), "data-kind": kind, role: "group", "aria-label": "Your decision" });
    box.append(el("p", { class: "question" }, question));
    if (kind === "import" && event.detail) box.append(renderReport(event.detail));
    if (kind === "call" && event.detail) box.append(el("pre", { class: "output" }, `${event.detail.name}(${JSON.stringify(event.detail.arguments ?? {}, null, 1)})`));
    if (event.rows && Object.keys(event.rows).length) box.append(rowDetails(event.rows, event.tables, "The rows", true, this.options.format));
    const actions = el("div", { class: "approval-actions" });
    for (const { label, approved, remember, style } of buttons) {
      const button = el("button", { type: "button", class: `${style} small`, "data-decision": remember ? "remember" : approved ? "approve" : "decline" }, label);
      button.disabled = !live;
      button.addEventListener("click", () => {
        for (const b of actions.querySelectorAll("button")) b.disabled = true;
        button.classList.add("chosen");
        button.setAttribute("aria-pressed", "true");
        box.querySelector(".question").textContent = approved ? "Saving…" : "Declining…";
        this.options.onDecide?.(approved, { remember });
      });
      actions.append(button);
    }
    box.append(actions);
    if (!live) box.classList.add("stale");
    step.node.append(box);
  }

  on_approval_decision(event) {
    const box = [...this.root.querySelectorAll(`[data-approval="${event.step}"]`)].at(-1);
    if (!box) return;
    // The button pressed here, unless the worker reports another decision (e.g. Stop declined it).
    const clicked = box.querySelector("button.chosen")?.dataset.decision;
    const chosen = clicked && (clicked !== "decline") === event.approved ? clicked : event.approved ? (event.remember ? "remember" : "approve") : "decline";
    for (const button of box.querySelectorAll("button")) {
      button.disabled = true;
      const picked = button.dataset.decision === chosen;
      button.classList.toggle("chosen", picked);
      button.setAttribute("aria-pressed", String(picked));
    }
    box.classList.add("decided");
    box.classList.remove("stale");
    const kind = box.dataset.kind;
    box.querySelector(".question").textContent = event.approved
      ? kind === "import"
        ? "You replaced the database."
        : `You saved these changes.${chosen === "remember" ? " Later changes in this conversation are saved without asking." : ""}`
      : kind === "import"
        ? "You kept the current database."
        : "You declined these changes.";
  }

  // --- history: undo -------------------------------------------------------------------------

  on_history_point(event) {
    const point = event.point || {};
    if (point.kind !== "turn" || !point.undoable || point.undone) return;
    const turn = this.turn ?? this.lastTurn;
    if (!turn) return;
    turn.querySelector(":scope > .turn-actions")?.remove();
    const undo = el("button", { type: "button", class: "ghost small", "data-undo": String(point.id) }, "Undo");
    undo.setAttribute("aria-label", `Undo the changes of “${shorten(point.request || "this request", 60)}”`);
    undo.addEventListener("click", () => {
      undo.disabled = true;
      undo.textContent = "Undoing…";
      this.options.onUndo?.(point.id);
    });
    turn.append(el("div", { class: "turn-actions" }, el("span", { class: "muted small" }, `Saved: ${describeCounts(point.tables)}`), undo));
  }

  /** An undo or restore happened: `point` is its own history point, `reverted` the points it undid. */
  on_undone(event) {
    for (const id of revertedPoints(event)) {
      const button = this.root.querySelector(`[data-undo="${CSS.escape(String(id))}"]`);
      if (!button) continue;
      button.disabled = true;
      button.textContent = "Undone";
    }
    const what = event.kind === "restore" ? "Restored an earlier point of the history" : "Undone";
    const box = el("div", { class: "note undone" }, el("strong", {}, `${what}: ${describeCounts(event.tables)}.`));
    if (event.rows && Object.keys(event.rows).length) box.append(rowDetails(event.rows, event.tables, "Show the rows", false, this.options.format));
    this.root.append(box);
  }

  // --- errors, notices, the end of a turn ------------------------------------------------------

  on_error(event) {
    const target = this.turn ?? this.root;
    target.append(note("error", event.message, event.hint));
    this.endSteps();
    if (!this.turn) this.options.announce?.(`${event.message}. ${capitalise(event.hint || "")}`);
  }

  on_notice(event) {
    this.root.append(el("p", { class: "notice" }, event.message));
  }

  on_turn_end(event, live) {
    this.endSteps();
    const count = this.steps.size;
    const steps = count ? ` · ${count} step${count === 1 ? "" : "s"}` : "";
    // Token counts and cost only for a real model's calls (the demo model makes none).
    const real = this.options.showTokens?.() !== false;
    const tokens = event.input_tokens || event.output_tokens;
    const usage = tokens && real ? ` · ${(event.input_tokens + event.output_tokens).toLocaleString()} tokens so far` : "";
    const cost = real && typeof event.cost === "number" ? ` · $${event.cost.toFixed(4)}` : "";
    const ending = ENDINGS[event.reason] || event.reason;
    this.ensureTurn().append(el("p", { class: `turn-end ${event.reason}` }, `${ending}${steps}${usage}${cost}`));
    if (live) {
      const message = event.reason === "paused" ? "A step waits for your decision: save its changes or decline them." : this.lastMessage?.text?.textContent.trim() ?? "";
      this.options.announce?.(`${ending}. ${message}`.trim());
    }
    this.lastMessage = null;
    // A paused turn goes on after the decision: its steps keep their numbers.
    if (event.reason !== "paused") this.turn = null;
  }

  /** Label committed changes "saved" once the database write is durable (the `saved` event, up to its `step`). */
  markSaved(step) {
    for (const box of this.root.querySelectorAll(".changes.committed:not(.saved)")) {
      if (typeof step === "number" && Number(box.dataset.step) > step) continue;
      box.classList.add("saved");
      box.querySelector(".label").textContent = `Changes ${STATUS.saved}`;
    }
  }

  /** Buttons of approvals from an earlier session cannot be used any more (unless `keep` is that step). */
  disableStaleApprovals(keep = null) {
    for (const box of this.root.querySelectorAll(".approval:not(.decided)")) {
      const live = keep !== null && box.dataset.approval === String(keep);
      box.classList.toggle("stale", !live);
      box.querySelectorAll("button").forEach((b) => (b.disabled = !live));
    }
  }

  /** The approval of `step` could not be restored after a reload: say so on its card. */
  discardApproval(step) {
    for (const box of this.root.querySelectorAll(`.approval[data-approval="${step}"]:not(.decided)`)) {
      box.classList.add("decided", "discarded");
      box.querySelectorAll("button").forEach((b) => (b.disabled = true));
      box.querySelector(".question").textContent = "This step was discarded when the page reloaded; nothing from it was saved.";
    }
  }
}

/** The ids of the history points an `undone` event reverted. */
export function revertedPoints(event) {
  const ids = event.reverted ?? event.point?.reverts;
  if (Array.isArray(ids)) return ids;
  return typeof event.point === "object" ? [] : [event.point]; // an older form: the id of the undone point
}

const TOOL_STATUS = { started: "running…", finished: "done", failed: "failed", declined: "declined", blocked: "blocked" };

// Events that do not end the welcome screen.
const QUIET = new Set(["notice", "history_point", "queued"]);

// --- pieces ------------------------------------------------------------------------------------

function approvalText(kind, event) {
  if (kind === "import") {
    return {
      question: "Replace the database with the imported file? The current data can be restored from the history.",
      buttons: [
        { label: "Replace the database", approved: true, style: "primary" },
        { label: "Keep the current database", approved: false, style: "ghost" },
      ],
    };
  }
  const remember = { label: "Allow for the rest of this conversation", approved: true, remember: true, style: "ghost" };
  if (kind === "call") {
    return {
      question: `Allow the call to ${event.detail?.name ?? "a tool"}?`,
      buttons: [{ label: "Allow", approved: true, style: "primary" }, { label: "Decline", approved: false, style: "ghost" }, remember],
    };
  }
  return {
    question: "Save these changes to the database?",
    buttons: [{ label: "Save changes", approved: true, style: "primary" }, { label: "Decline", approved: false, style: "ghost" }, remember],
  };
}

function countChips(tables = {}) {
  return Object.entries(tables).map(([table, counts]) => {
    const parts = [counts.inserted ? `+${counts.inserted}` : "", counts.updated ? `~${counts.updated}` : "", counts.deleted ? `−${counts.deleted}` : ""].filter(Boolean);
    return el("span", { class: "chip small", title: describeTable(counts) }, `${table} ${parts.join(" ")}`);
  });
}

function describeTable(counts = {}) {
  return [counts.inserted && `${counts.inserted} inserted`, counts.updated && `${counts.updated} updated`, counts.deleted && `${counts.deleted} deleted`].filter(Boolean).join(", ");
}

function describeCounts(tables = {}) {
  const parts = Object.entries(tables || {}).map(([table, counts]) => `${table} ${describeTable(counts)}`);
  return parts.length ? parts.join("; ") : "no rows";
}

/**
 * The rows of a change, per table: inserted values, updated key + before → after, deleted
 * values (`rows` as in the `changes` event; `tables` holds the exact counts).
 */
export function rowDetails(rows, tables = {}, summary = "Show the rows", open = false, format = null) {
  const box = el("details", { class: "row-changes", open });
  box.append(el("summary", {}, summary));
  for (const [table, detail] of Object.entries(rows || {})) {
    const counts = tables[table] || {};
    const section = el("section", { class: "row-table" }, el("h4", {}, table));
    const inserted = detail.inserted || [];
    const updated = detail.updated || [];
    const deleted = detail.deleted || [];
    const show = (value, column) => (format ? format(table, column, value) : cellText(value));
    if (inserted.length) section.append(valuesTable("Inserted", inserted, "inserted", show), more(counts.inserted, inserted.length));
    if (updated.length) section.append(updatesTable(updated, show), more(counts.updated, updated.length));
    if (deleted.length) section.append(valuesTable("Deleted", deleted, "deleted", show), more(counts.deleted, deleted.length));
    box.append(section);
  }
  return box;
}

function valuesTable(caption, rows, kind, show) {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  return el(
    "div",
    { class: "md-table" },
    el(
      "table",
      { class: `preview ${kind}` },
      el("caption", {}, `${caption} (${rows.length})`),
      el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col" }, c)))),
      el("tbody", {}, ...rows.map((row) => el("tr", {}, ...columns.map((c) => valueCell(row[c], "", show(row[c], c)))))),
    ),
  );
}

function updatesTable(updates, show) {
  const body = [];
  for (const change of updates) {
    const key = Object.entries(change.key || {}).map(([k, v]) => `${k}=${cellText(v)}`).join(", ");
    const columns = [...new Set([...Object.keys(change.after || {}), ...Object.keys(change.before || {})])];
    columns.forEach((column, i) => {
      body.push(
        el(
          "tr",
          {},
          i === 0 ? el("th", { scope: "row", rowspan: String(columns.length) }, key) : null,
          el("td", {}, column),
          valueCell(change.before?.[column], "before", show(change.before?.[column], column)),
          valueCell(change.after?.[column], "after", show(change.after?.[column], column)),
        ),
      );
    });
  }
  return el(
    "div",
    { class: "md-table" },
    el(
      "table",
      { class: "preview updated" },
      el("caption", {}, `Updated (${updates.length})`),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "row"), el("th", { scope: "col" }, "column"), el("th", { scope: "col" }, "before"), el("th", { scope: "col" }, "after"))),
      el("tbody", {}, ...body),
    ),
  );
}

function valueCell(value, kind = "", shown = cellText(value)) {
  if (value === null || value === undefined) return el("td", { class: `null ${kind}`.trim() }, "null");
  return el("td", { class: kind || null, title: shown !== cellText(value) ? cellText(value) : null }, shown);
}

function more(total, shown) {
  return total > shown ? el("p", { class: "muted small" }, `… and ${(total - shown).toLocaleString()} more`) : "";
}

/** The report of an import: what each table holds now and in the file, and what differs. */
function renderReport(detail) {
  if (!Array.isArray(detail?.tables)) return outline(detail);
  const box = el("div", { class: "report" });
  const list = (items) => el("ul", {}, ...items.map((item) => el("li", {}, cellText(item))));
  if (detail.problems?.length) box.append(el("p", { class: "report-problems" }, "It cannot be imported:"), list(detail.problems));
  if (detail.warnings?.length) box.append(el("p", {}, "Notes:"), list(detail.warnings));
  const rows = detail.tables.map((table) => {
    const notes = [
      !table.found && "not in the file: it will be empty",
      table.missing_columns?.length && `missing columns: ${table.missing_columns.join(", ")}`,
      table.extra_columns?.length && `extra columns (ignored): ${table.extra_columns.join(", ")}`,
      ...(table.type_mismatches ?? []).map((m) => `${m.column}: ${m.found} in the file, ${m.expected} expected`),
    ].filter(Boolean);
    return el(
      "tr",
      {},
      el("th", { scope: "row" }, table.name),
      el("td", { class: "num" }, table.rows_now === null || table.rows_now === undefined ? "—" : table.rows_now.toLocaleString()),
      el("td", { class: "num" }, table.found ? (table.rows_in_file ?? 0).toLocaleString() : "—"),
      el("td", {}, notes.join("; ") || "same columns"),
    );
  });
  box.append(
    el(
      "div",
      { class: "md-table" },
      el(
        "table",
        { class: "preview" },
        el("caption", {}, "Each table is replaced by the file's rows"),
        el("thead", {}, el("tr", {}, ...["table", "rows now", "rows in the file", "differences"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, ...rows),
      ),
    ),
  );
  if (detail.extra_tables?.length) box.append(el("p", { class: "muted small" }, `Tables in the file that the app does not use (left out): ${detail.extra_tables.join(", ")}.`));
  return box;
}

/** Any other JSON detail, as a readable outline. */
function outline(detail) {
  const describe = (value) => {
    if (Array.isArray(value)) return value.length ? el("ul", {}, ...value.map((v) => el("li", {}, describe(v)))) : el("span", { class: "muted" }, "none");
    if (value && typeof value === "object") {
      const list = el("dl", {});
      for (const [key, inner] of Object.entries(value)) list.append(el("dt", {}, key.replaceAll("_", " ")), el("dd", {}, describe(inner)));
      return list;
    }
    return document.createTextNode(cellText(value));
  };
  return el("div", { class: "report" }, describe(detail));
}

function note(kind, message, detail) {
  const box = el("div", { class: `note ${kind}` }, el("strong", {}, message));
  if (detail) box.append(kind === "error" ? el("p", { class: "hint" }, capitalise(detail)) : el("pre", {}, detail));
  return box;
}

function capitalise(text) {
  return text ? text[0].toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".") : "";
}

function shorten(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** Text as paragraphs, with `inline code` shown as code (before markdown.js has loaded). */
function paragraphs(text) {
  return String(text)
    .split(/\n{2,}/)
    .filter((p) => p.trim())
    .map((p) => {
      const node = el("p", {});
      p.split(/(`[^`\n]+`)/).forEach((part, i) => node.append(i % 2 ? el("code", {}, part.slice(1, -1)) : part));
      return node;
    });
}
