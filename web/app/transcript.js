// Renders the agent's events as a conversation: the person's messages, each step's
// streamed text and code, its output, changes, approvals, errors and the turn's end.
// Model text is only ever inserted as text, never as HTML.

import { el } from "./replica.js";

const PHASES = {
  completion: "Thinking",
  validation: "Checking the code",
  execution: "Running",
  approval: "Waiting for your decision",
};

const STATUS = {
  committed: "saved",
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

export class Transcript {
  constructor(root, { onDecide }) {
    this.root = root;
    this.onDecide = onDecide;
    this.welcome = root.querySelector("[data-welcome]");
    this.clear();
  }

  clear() {
    this.root.replaceChildren(this.welcome);
    this.welcome.hidden = false;
    this.turn = null;
    this.steps = new Map();
  }

  /** Render one event; `live` is false when replaying a saved transcript. */
  render(event, live = true) {
    const handler = this[`on_${event.type}`];
    if (!handler) return;
    // Follow the conversation unless the person has scrolled up to read.
    const follow = this.root.scrollHeight - this.root.scrollTop - this.root.clientHeight < 120;
    this.welcome.hidden = true;
    handler.call(this, event, live);
    if (live && follow) this.root.scrollTop = this.root.scrollHeight;
  }

  // --- containers ------------------------------------------------------------------------

  ensureTurn() {
    if (!this.turn) {
      this.turn = el("div", { class: "turn" });
      this.root.append(this.turn);
    }
    return this.turn;
  }

  step(number) {
    let step = this.steps.get(number);
    if (!step) {
      const phase = el("span", { class: "phase" });
      const node = el(
        "article",
        { class: "step", "data-step": String(number) },
        el("header", { class: "step-head" }, el("span", { class: "who" }, "Assistant"), el("span", { class: "badge" }, `step ${number}`), phase),
      );
      step = { node, phase, text: null, code: null, textBuffer: "", codeBuffer: "" };
      this.steps.set(number, step);
      this.ensureTurn().append(node);
    }
    return step;
  }

  setPhase(step, name) {
    step.phase.textContent = name ? `${name}…` : "";
    step.phase.classList.toggle("busy", Boolean(name));
  }

  setText(step, text) {
    if (!step.text) {
      step.text = el("div", { class: "text" });
      step.node.querySelector(".step-head").after(step.text);
    }
    step.text.replaceChildren(...paragraphs(text));
  }

  setCode(step, code) {
    if (!code) return;
    if (!step.code) {
      step.code = el("code", {});
      step.node.append(el("figure", { class: "code" }, el("figcaption", {}, "Python"), el("pre", {}, step.code)));
    }
    step.code.textContent = code;
  }

  // --- events ------------------------------------------------------------------------------

  on_user_message(event) {
    this.turn = null;
    this.steps = new Map();
    this.root.append(el("div", { class: "msg user" }, el("div", { class: "bubble" }, ...paragraphs(event.content))));
    this.ensureTurn();
  }

  on_signal(event, live) {
    if (!live || !PHASES[event.signal]) return;
    this.setPhase(this.step(event.step), PHASES[event.signal]);
  }

  on_message_delta(event) {
    const step = this.step(event.step);
    step.textBuffer += event.text;
    this.setText(step, step.textBuffer);
  }

  on_code_delta(event) {
    const step = this.step(event.step);
    step.codeBuffer += event.text;
    this.setCode(step, step.codeBuffer);
  }

  on_assistant_reply(event) {
    const step = this.step(event.step);
    if (event.message) this.setText(step, event.message);
    this.setCode(step, event.code);
    this.setPhase(step, event.code ? PHASES.validation : "");
  }

  on_malformed_reply(event) {
    const step = this.step(event.step);
    this.setPhase(step, "");
    step.node.append(note("warn", "The reply could not be read, so the model was asked again.", event.problem));
  }

  on_validation_failed(event) {
    const step = this.step(event.step);
    this.setPhase(step, "");
    step.node.append(note("warn", "The code was refused before it ran.", event.message));
  }

  on_execution_result(event) {
    const step = this.step(event.step);
    this.setPhase(step, "");
    const took = event.duration_ms >= 1000 ? `${(event.duration_ms / 1000).toFixed(1)} s` : `${Math.round(event.duration_ms)} ms`;
    const label = `Output · ${took}${event.truncated ? " · shortened" : ""}`;
    const blocks = [];
    if (event.output || !event.error) blocks.push(el("pre", { class: "output" }, event.output || "(nothing printed)"));
    if (event.error) blocks.push(el("pre", { class: "output error" }, event.error));
    step.node.append(el("div", { class: "result" }, el("div", { class: "label" }, label), ...blocks));
  }

  on_changes(event) {
    const step = this.step(event.step);
    const chips = Object.entries(event.tables).map(([table, counts]) => {
      const parts = [
        counts.inserted ? `+${counts.inserted}` : "",
        counts.updated ? `~${counts.updated}` : "",
        counts.deleted ? `−${counts.deleted}` : "",
      ].filter(Boolean);
      return el("span", { class: "chip small" }, `${table} ${parts.join(" ")}`);
    });
    step.node.append(el("div", { class: `changes ${event.status}` }, el("span", { class: "label" }, `Changes ${STATUS[event.status] || event.status}`), ...chips));
  }

  on_approval_required(event, live) {
    const step = this.step(event.step);
    this.setPhase(step, "");
    const approve = el("button", { type: "button", class: "primary small" }, "Save changes");
    const decline = el("button", { type: "button", class: "ghost small" }, "Decline");
    const box = el("div", { class: "approval", "data-approval": String(event.step) }, el("span", {}, "Save these changes to the database?"), approve, decline);
    if (!live) box.classList.add("stale");
    for (const [button, approved] of [[approve, true], [decline, false]]) {
      button.disabled = !live;
      button.addEventListener("click", () => {
        approve.disabled = decline.disabled = true;
        this.onDecide(approved);
      });
    }
    step.node.append(box);
  }

  on_approval_decision(event) {
    const box = this.root.querySelector(`[data-approval="${event.step}"]`);
    if (box) {
      box.querySelectorAll("button").forEach((b) => (b.disabled = true));
      box.classList.add("decided");
      box.firstChild.textContent = event.approved ? "You saved these changes." : "You declined these changes.";
    }
  }

  on_error(event) {
    const target = this.turn ?? this.root;
    target.append(note("error", event.message, event.hint));
    for (const step of this.steps.values()) this.setPhase(step, "");
  }

  on_notice(event) {
    this.root.append(el("p", { class: "notice" }, event.message));
  }

  on_turn_end(event) {
    for (const step of this.steps.values()) this.setPhase(step, "");
    const tokens = event.input_tokens || event.output_tokens ? ` · ${(event.input_tokens + event.output_tokens).toLocaleString()} tokens so far` : "";
    const steps = event.steps ? ` · ${event.steps} step${event.steps === 1 ? "" : "s"}` : "";
    this.ensureTurn().append(el("p", { class: `turn-end ${event.reason}` }, `${ENDINGS[event.reason] || event.reason}${steps}${tokens}`));
    this.turn = null;
  }

  /** Buttons of approvals from an earlier session cannot be used any more. */
  disableStaleApprovals() {
    this.root.querySelectorAll(".approval:not(.decided) button").forEach((b) => (b.disabled = true));
  }
}

function note(kind, message, detail) {
  const box = el("div", { class: `note ${kind}`, role: kind === "error" ? "alert" : "status" }, el("strong", {}, message));
  if (detail) box.append(kind === "error" ? el("p", { class: "hint" }, capitalise(detail)) : el("pre", {}, detail));
  return box;
}

function capitalise(text) {
  return text ? text[0].toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".") : "";
}

/** Text as paragraphs, with `inline code` shown as code. */
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
