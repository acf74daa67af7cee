// The page's side of the worker: starts it, routes its messages, persists its
// snapshots, and stops runaway code (interrupt, or terminate and restore).
//
// Everything the worker says is re-emitted to listeners (`on(type, fn)`), so the
// chat UI, host pages and tests all see the same JSON events.

import { FetchShim } from "./shim.js";
import { PROVIDERS, saves, settings } from "./store.js";

// Events that make up the transcript; deltas and signals are only for the live view.
const LOGGED = new Set([
  "user_message", "assistant_reply", "malformed_reply", "validation_failed", "execution_result",
  "changes", "approval_required", "approval_decision", "error", "turn_end", "notice",
]);
// Commands that start a turn: if the worker refuses one, no turn_end will follow.
const TURN_COMMANDS = new Set(["send", "approve", "decline"]);
const INTERRUPT_GRACE_MS = 2500; // after an interrupt, how long the worker has to end the turn
const ABORT_GRACE_MS = 8000; // after Stop, before the worker is presumed stuck

export class AgentClient {
  constructor({ schema, replica, testHooks = false }) {
    Object.assign(this, { schema, replica, testHooks });
    this.listeners = new Map();
    this.log = [];
    this.lastDb = null; // the last committed database file
    this.conversation = null; // the last conversation from the worker (State.to_dict())
    this.running = false; // a turn is in progress
    this.executing = false; // model code is running (from the events)
    this.restarts = 0;
    this.newReady();
    this.requests = new Map(); // request id -> {resolve, reject}
    this.nextRequest = 1;
    this.shim = new FetchShim({
      endpoint: () => settings.endpoint(),
      key: () => settings.key(),
      needsKey: () => Boolean(PROVIDERS[settings.load().provider]?.key),
      post: (message, transfer) => this.worker?.postMessage(message, transfer),
      emit: (event) => this.emit(event),
    });
  }

  // --- events -----------------------------------------------------------------------------

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(event) {
    if (LOGGED.has(event.type)) this.log.push(event);
    for (const type of [event.type, "*"]) {
      for (const fn of this.listeners.get(type) ?? []) {
        try {
          fn(event);
        } catch (error) {
          console.error("py-agent listener failed", error);
        }
      }
    }
  }

  // --- lifecycle ----------------------------------------------------------------------------

  /** Restore the saved database and conversation (if any) and boot the worker. */
  async start() {
    const saved = await saves.load(this.schema);
    if (saved?.db) {
      this.lastDb = saved.db;
      await this.replica.load(saved.db); // the table browser works before Python has booted
    }
    this.conversation = saved?.conversation ?? null;
    this.log = saved?.log ?? [];
    this.boot();
    return saved;
  }

  /** `ready` settles once per worker: a restarted worker gets a new promise. */
  newReady() {
    const hooks = { settled: false };
    this.ready = new Promise((resolve, reject) => {
      hooks.resolve = (value) => ((hooks.settled = true), resolve(value));
      hooks.reject = (error) => ((hooks.settled = true), reject(error));
    });
    this.ready.catch(() => {}); // the UI reports fatal errors itself
    this.readyHooks = hooks;
  }

  boot() {
    if (this.readyHooks.settled) this.newReady();
    // Shared memory exists only with cross-origin isolation (COOP/COEP): then runaway
    // code is interrupted in place; without it the worker is terminated and restored.
    this.shared = globalThis.crossOriginIsolated ? new SharedArrayBuffer(8) : null;
    this.views = this.shared && { interrupt: new Int32Array(this.shared, 0, 1), executing: new Int32Array(this.shared, 4, 1) };
    this.worker = new Worker(new URL("worker.js", document.baseURI), { type: "module" });
    this.worker.onmessage = (event) => this.receive(event.data);
    this.worker.onerror = (event) => this.fatal(`The worker failed to load: ${event.message || "unknown error"}`);
    this.worker.postMessage({ type: "init", shared: this.shared, testHooks: this.testHooks });
    // Settings first, so the agent is built once, when the database opens.
    this.worker.postMessage(this.configMessage());
    const db = this.lastDb ? this.lastDb.slice() : undefined;
    this.worker.postMessage({ type: "open", schema: this.schema, conversation: this.conversation, db }, db ? [db.buffer] : []);
  }

  configMessage() {
    const values = settings.load();
    const provider = PROVIDERS[values.provider];
    // The key is deliberately absent: it stays in the page (see shim.js).
    return {
      type: "configure",
      provider: values.provider,
      model: values.model || provider.model || "",
      baseUrl: values.baseUrl,
      approve: values.approve,
    };
  }

  fatal(message, hint = "reload the page") {
    this.emit({ type: "fatal", message, hint });
    this.readyHooks.reject(new Error(message));
  }

  /** Stop the worker at once and start a new one from the last committed snapshot. */
  restart(reason) {
    clearTimeout(this.watchdog);
    this.worker.terminate();
    this.shim.abortAll();
    this.restarts += 1;
    for (const { reject } of this.requests.values()) reject(new Error("the worker was restarted"));
    this.requests.clear();
    if (this.running) {
      this.emit({
        type: "error",
        kind: "interrupted",
        message: reason === "interrupt" ? "The running code was stopped by restarting Python." : "Python stopped responding and was restarted.",
        hint: "the database was restored from its last committed step; nothing committed was lost",
      });
      this.turnEnded({ type: "turn_end", reason: "aborted", steps: 0, input_tokens: 0, output_tokens: 0 });
    }
    this.emit({ type: "restarted", reason });
    this.boot();
  }

  // --- messages from the worker ------------------------------------------------------------

  receive(message) {
    switch (message.type) {
      case "fetch":
      case "fetch_abort":
        return this.shim.handle(message);
      case "snapshot":
        return this.persist(message);
      case "ready":
        this.readyHooks.resolve(message);
        break;
      case "fatal":
        return this.fatal(message.message, message.hint);
      case "signal":
        this.executing = message.signal === "execution";
        break;
      case "execution_result":
      case "approval_required":
        this.executing = false;
        break;
      case "turn_end":
        return this.turnEnded(message);
      case "exported":
      case "imported":
      case "reset_done":
      case "debug_result":
      case "debug_scan_result":
      case "configured":
        this.settle(message, null);
        break;
      case "error":
        if (message.request) this.settle(message, new Error(message.hint ? `${message.message} (${message.hint})` : message.message));
        if (TURN_COMMANDS.has(message.command)) this.refused(message);
        break;
    }
    this.emit(message);
  }

  async persist(snapshot) {
    const patch = { log: this.log };
    if (snapshot.conversation) patch.conversation = this.conversation = snapshot.conversation;
    if (snapshot.db) patch.db = this.lastDb = snapshot.db;
    // Queue the save before any await, so saves land in the order the snapshots came.
    const saved = saves.save(this.schema, patch);
    if (snapshot.db) await this.replica.load(snapshot.db);
    await saved;
    this.emit({ type: "saved", reason: snapshot.reason, db: Boolean(snapshot.db) });
  }

  /** Whether a turn is in progress; the UI follows the `running` event whoever started it. */
  setRunning(running) {
    if (running === this.running) return;
    this.running = running;
    if (!running) this.executing = false;
    this.emit({ type: "running", running });
  }

  /** The worker refused to start a turn (e.g. a step waits for approval): nothing runs. */
  refused(error) {
    clearTimeout(this.watchdog);
    this.setRunning(false);
    const turn = this.turn;
    this.turn = null;
    turn?.resolve(error);
  }

  turnEnded(message) {
    clearTimeout(this.watchdog);
    this.setRunning(false);
    this.emit(message);
    const turn = this.turn;
    this.turn = null;
    turn?.resolve(message);
  }

  // --- commands ----------------------------------------------------------------------------

  request(message, transfer = []) {
    const request = this.nextRequest++;
    return new Promise((resolve, reject) => {
      this.requests.set(request, { resolve, reject });
      this.worker.postMessage({ ...message, request }, transfer);
    });
  }

  settle(message, error) {
    const pending = this.requests.get(message.request);
    if (!pending) return;
    this.requests.delete(message.request);
    if (error) pending.reject(error);
    else pending.resolve(message);
  }

  /** Send a message; resolves with the turn_end event (or the error event if it was refused). */
  async send(text) {
    await this.ready;
    if (this.running) throw new Error("the agent is still working on the previous message");
    this.setRunning(true);
    const done = new Promise((resolve) => (this.turn = { resolve }));
    this.worker.postMessage({ type: "send", text });
    return done;
  }

  decide(approved) {
    this.setRunning(true);
    const done = new Promise((resolve) => (this.turn = { resolve }));
    this.worker.postMessage({ type: approved ? "approve" : "decline" });
    return done;
  }

  /** Stop the turn: interrupt running code, or end the turn at its next await. */
  stop() {
    return this.executing ? this.interrupt() : this.abort();
  }

  abort() {
    if (!this.running) return false;
    this.worker.postMessage({ type: "abort" });
    this.watch(ABORT_GRACE_MS, "unresponsive");
    return true;
  }

  interrupt() {
    if (!this.running) return false;
    if (this.views) {
      // Raise the flag only while code runs: a late flag would land in the event loop.
      if (Atomics.load(this.views.executing, 0) === 1) Atomics.store(this.views.interrupt, 0, 2 /* SIGINT */);
      this.worker.postMessage({ type: "interrupt" });
      this.watch(INTERRUPT_GRACE_MS, "interrupt");
    } else if (this.executing) {
      this.restart("interrupt"); // no shared memory: the only way to stop a busy worker
    } else {
      this.abort();
    }
    return true;
  }

  watch(ms, reason) {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.running && this.restart(reason), ms);
  }

  async configure(values) {
    settings.save({ ...settings.load(), ...values });
    await this.ready;
    return this.request(this.configMessage());
  }

  async reset() {
    await this.ready;
    this.log = [];
    const result = await this.request({ type: "reset" });
    this.emit({ type: "reset" });
    return result;
  }

  async exportDb() {
    await this.ready;
    return (await this.request({ type: "export" })).db;
  }

  async importDb(bytes) {
    bytes = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const problems = await this.replica.check(bytes);
    if (problems.length) {
      const error = {
        type: "error",
        kind: "import",
        message: `That file was not imported: ${problems.join("; ")}.`,
        hint: "choose an intact .sqlite file; the current database is unchanged",
      };
      this.emit(error);
      throw new Error(error.message);
    }
    await this.ready;
    const copy = bytes.slice();
    const result = await this.request({ type: "import", db: copy }, [copy.buffer]);
    this.emit({ type: "notice", message: `Imported a database with ${describeCounts(result.tables)}.` });
    return result;
  }

  /** Tests only (?test): run Python in the worker outside the agent; sets `result`. */
  async debug(code) {
    if (!this.testHooks) throw new Error("test hooks are off (open the page with ?test)");
    await this.ready;
    const reply = await this.request({ type: "debug", code });
    if (!reply.ok) throw new Error(reply.value);
    return reply.value;
  }

  /** Tests only: count occurrences of `needle` in the worker's WebAssembly memory and files. */
  async scan(needle) {
    if (!this.testHooks) throw new Error("test hooks are off (open the page with ?test)");
    await this.ready;
    return this.request({ type: "debug_scan", needle });
  }
}

export function describeCounts(tables) {
  const entries = Object.entries(tables || {});
  const rows = entries.reduce((sum, [, n]) => sum + n, 0);
  return `${entries.length} tables and ${rows.toLocaleString()} rows`;
}
