// The page's side of the worker: starts it, routes its messages, persists its
// snapshots, enforces each step's time limit, and brings Python back (terminate
// and restore from the last saved state) when it is stuck, out of memory or gone.
//
// Everything the worker says is re-emitted to listeners (`on(type, fn)`), so the
// chat UI, host pages and tests all see the same JSON events. The client adds page
// events of its own (see the contract in the class comment below).

import { FetchShim } from "./shim.js";
import { PROVIDERS, saves, settings } from "./store.js";
import { WriterLock } from "./tabs.js";
import { makeBootSnapshot, offerBootSnapshot } from "./bootcache.js";
import { DAMAGE, KEPT, LOGGED_FIELDS, copyBytes, eventProblem, readSaved as checkRecord, snapshotProblem } from "./checks.js";

// Events that make up the transcript (kept in the saved log); deltas and signals are only for the live view.
const LOGGED = new Set(Object.keys(LOGGED_FIELDS));
// Commands that start a turn: if the worker refuses one, no turn_end will follow.
const TURN_COMMANDS = new Set(["send", "approve", "decline", "decide", "import"]);
// Replies to requests (they carry the request id).
const REPLIES = new Set([
  "exported", "imported", "import_started", "reset_done", "configured", "history", "conversation_opened", "pong",
  "debug_result", "debug_scan_result", "debug_js_result",
]);
const INTERRUPT_GRACE_MS = 2500; // after an interrupt, how long the worker has to end the step
const ABORT_GRACE_MS = 8000; // after Stop, before the worker is presumed stuck
const ANSWER_MS = 10000; // a command that starts a turn is answered at once by a live worker
const HANDOVER_WAIT_MS = 2500; // when another tab takes over: time to end a running turn
const SNAPSHOT_DELAY_MS = 3000; // idle time after `ready` (or a turn) before the background boot snapshot starts
const RESTARTS_ALLOWED = 3; // restarts within RESTART_WINDOW_MS before giving up
const RESTART_WINDOW_MS = 60000;
const SIGINT = 2; // Stop: KeyboardInterrupt in Python
const SIGALRM = 14; // time limit: StepTimeout in Python (the core's Deadline)
const NOT_HERE = "this app is in use in another tab; choose “Use here” to continue in this one";

const LOST_MESSAGES = {
  interrupt: () => "The running code was stopped by restarting Python.",
  timeout: (t, isolated) =>
    isolated ? `The step ran longer than ${t} s and did not respond to the interrupt, so Python was restarted.` : `The step ran longer than ${t} s, so Python was restarted to stop it.`,
  memory: () => "Python ran out of memory, so it was restarted.",
  crash: () => "Python stopped working, so it was restarted.",
  unresponsive: () => "Python stopped responding and was restarted.",
};
const RESTORED = "the database was restored from its last saved step; nothing saved was lost";

/**
 * The agent in a page. Page events, besides every worker event:
 * `running {running}`, `saved {reason, db, step}` (after the IndexedDB write is durable),
 * `restarted {reason}`, `fatal {message, hint}`, `notice {message}`,
 * `step_started {step, at, timeout}` / `step_ended {step, ms}`,
 * `tab_conflict {state: "other-tab-active"|"taken-over"|"resolved"}`,
 * `storage_damaged {what, message}` (then `downloadDamaged(what)`),
 * `worker_lost {reason: "memory"|"crash"|"timeout", message}` (a restore follows),
 * `queued {text}` / `queue_sent {text}`, `conversation {log, reason}` (redraw the transcript),
 * `boot_snapshot {kept, ms, error}` (a snapshot for the next visit, made in the background),
 * `reset`.
 */
export class AgentClient {
  constructor({ schema, replica, testHooks = false }) {
    Object.assign(this, { schema, replica, testHooks });
    this.listeners = new Map();
    this.log = [];
    this.lastDb = null; // the last committed database file
    this.conversation = null; // the last conversation from the worker (State.to_dict())
    this.running = false; // a turn is in progress
    this.executing = false; // model code is running (from the events)
    this.pending = null; // the approval_required event of a step waiting for a decision
    this.queue = []; // [{text, resolve, reject}]: messages sent while the agent could not take them
    this.restarts = 0;
    this.restartTimes = [];
    this.isReady = false;
    this.writer = false; // this tab holds the app's database (tabs.js)
    this.damaged = new Map(); // what -> the copy that could not be read
    this.limits = { timeout: settings.load().timeout, memoryLimit: settings.load().memoryLimit };
    this.worker = null;
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
    this.lock = new WriterLock(schema, { yieldTo: () => this.yieldTo(), lost: () => this.standDown(true), granted: () => this.resume() });
  }

  // --- events -----------------------------------------------------------------------------

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(event) {
    if (LOGGED.has(event.type) && !eventProblem(event)) this.log.push(event);
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

  /** Restore the saved database and conversation (if any) and boot the worker (if this tab may write). */
  async start() {
    this.checkSettings();
    this.writer = await this.lock.claim();
    if (this.writer) this.spawn(); // Python loads while the saved state is read and checked
    const saved = await this.readSaved();
    if (this.writer) this.open();
    else {
      this.emit({ type: "tab_conflict", state: "other-tab-active" });
      this.lock.wait(); // starts by itself if the other tab closes
    }
    return saved;
  }

  /** Read the saved record, set aside what cannot be read, load the replica. */
  async readSaved() {
    let raw = null;
    try {
      raw = await saves.load(this.schema);
    } catch (error) {
      this.storageBroken = error;
      this.emit({
        type: "notice",
        message: `This browser would not open the app's saved data (${error?.message || error}), so nothing will be saved in this tab; your saved data, if any, is left as it is.`,
      });
    }
    const saved = checkRecord(raw);
    for (const { what, copy, message } of saved.damaged) await this.keepDamaged(what, copy, message);
    if (saved.db) {
      // A damaged file must never reach the table browser (nor Python): check it whole first.
      // (Python boots meanwhile, so this costs no time to the person.)
      const problems = await this.replica.check(saved.db).catch((error) => [error.message]);
      try {
        if (problems.length) throw new Error(problems.join("; "));
        await this.replica.load(saved.db); // the table browser works before Python has booted
      } catch (error) {
        await this.keepDamaged("database", saved.db, `${DAMAGE.database.replace(",", ` (${error.message}),`)}${KEPT}`);
        saved.db = null;
      }
    }
    this.lastDb = saved.db;
    this.conversation = saved.conversation;
    this.log = saved.log;
    for (const text of saved.queue) if (!this.queue.some((q) => q.text === text)) this.enqueue(text);
    return saved;
  }

  checkSettings() {
    const { problem, raw } = settings.check();
    if (!problem) return;
    this.keepDamaged("settings", raw, `${DAMAGE.settings.replace(".", ` (${problem}).`)}${KEPT}`);
    settings.save(settings.load()); // write back what could be read, so it is reported once
  }

  /** Keep `copy` for download (in memory and beside the record) and say what happened. */
  async keepDamaged(what, copy, message) {
    this.damaged.set(what, copy);
    try {
      await saves.keepDamaged(this.schema, what, copy);
    } catch (error) {
      // Not stored: nothing may overwrite the damaged record, and the person must download it now.
      this.storageBroken ??= error;
      message += " It could not be stored, so download it now, before you close this tab.";
    }
    this.emit({ type: "storage_damaged", what, message });
  }

  /** The bytes of a damaged copy (`what` from `storage_damaged`), for download. */
  async downloadDamaged(what) {
    let copy = this.damaged.get(what);
    if (copy === undefined) copy = (await saves.loadDamaged(this.schema))[what]?.copy;
    if (copy === undefined) throw new Error(`no damaged ${what} was kept`);
    return copyBytes(copy);
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

  /** Start a worker on the last saved state; `lost` describes a step the previous worker died in. */
  boot({ lost = null } = {}) {
    this.spawn();
    this.open({ lost });
  }

  /** Start a worker: it boots Python and waits for `open`. */
  spawn() {
    if (this.readyHooks.settled) this.newReady();
    this.isReady = false;
    this.booted = false;
    // Shared memory exists only with cross-origin isolation (COOP/COEP): then runaway
    // code is interrupted in place; without it the worker is terminated and restored.
    this.shared = globalThis.crossOriginIsolated ? new SharedArrayBuffer(8) : null;
    this.views = this.shared && { interrupt: new Int32Array(this.shared, 0, 1), executing: new Int32Array(this.shared, 4, 1) };
    const worker = new Worker(new URL("worker.js", document.baseURI), { type: "module" });
    this.worker = worker;
    worker.onmessage = (event) => worker === this.worker && this.receive(event.data);
    worker.onerror = (event) => worker === this.worker && this.workerFailed(event);
    // The worker imports the schema before `open` arrives, and may restore a booted Python
    // from the snapshot the page keeps (bootcache.js): it waits for the offer that follows.
    worker.postMessage({ type: "init", shared: this.shared, testHooks: this.testHooks, schema: this.schema, bootSnapshot: true });
    offerBootSnapshot(worker);
    // Settings first, so the agent is built once, when the database opens.
    worker.postMessage(this.configMessage());
  }

  /**
   * Make the boot snapshot for the next visit in a background worker (bootcache.js), once
   * the agent has been ready a moment and no turn is running: it takes a core and memory
   * for a few seconds. Once per page; emits `boot_snapshot {kept, ms, error}`.
   */
  snapshotSoon(schema) {
    if (this.snapshotStarted) return;
    this.snapshotStarted = true;
    const start = () => {
      if (this.running) {
        const off = this.on("turn_end", () => (off(), setTimeout(start, SNAPSHOT_DELAY_MS)));
        return;
      }
      makeBootSnapshot(new URL("worker.js", document.baseURI), schema).then((result) => this.emit({ type: "boot_snapshot", ...result }));
    };
    setTimeout(start, SNAPSHOT_DELAY_MS);
  }

  /** Open the last saved database and conversation in the worker. */
  open({ lost = null } = {}) {
    this.sent = { database: this.lastDb, conversation: this.conversation }; // to keep if the worker cannot read them
    const db = this.lastDb ? this.lastDb.slice() : undefined;
    this.worker.postMessage({ type: "open", schema: this.schema, conversation: this.conversation, db, lost }, db ? [db.buffer] : []);
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
      timeout: values.timeout,
      memoryLimit: values.memoryLimit,
    };
  }

  fatal(message, hint = "reload the page") {
    this.fatalError = true;
    this.emit({ type: "fatal", message, hint });
    this.readyHooks.reject(new Error(message));
  }

  workerFailed(event) {
    if (!this.booted) return this.fatal(`The worker failed to load: ${event.message || "unknown error"}`);
    this.restart("crash", event.message);
  }

  /** Stop the worker at once and start a new one from the last saved state. */
  restart(reason, detail = "") {
    const lost = this.running && this.current ? { ...this.current, reason } : null; // the step it died in
    this.stopWorker();
    this.restarts += 1;
    const message = LOST_MESSAGES[reason](this.limits.timeout, Boolean(this.views));
    if (this.unanswered?.type === "send" && this.turn) {
      // The worker died before it saw the message: send it again to the new one.
      this.queue.unshift({ text: this.unanswered.text, resolve: this.turn.resolve, reject: () => {} });
      this.turn = null;
      this.setRunning(false);
    }
    this.unanswered = null;
    if (this.running) {
      this.emit({ type: "error", kind: reason === "interrupt" ? "interrupted" : reason, message, hint: RESTORED });
      this.turnEnded({ type: "turn_end", reason: "aborted", steps: 0, input_tokens: 0, output_tokens: 0 });
    }
    if (["timeout", "memory", "crash"].includes(reason)) {
      this.emit({ type: "worker_lost", reason, message: `${message}${detail ? ` (${detail})` : ""} The last saved state is being restored; nothing saved was lost.` });
    }
    this.emit({ type: "restarted", reason });
    const now = Date.now();
    this.restartTimes = [...this.restartTimes.filter((t) => now - t < RESTART_WINDOW_MS), now];
    if (this.restartTimes.length > RESTARTS_ALLOWED) {
      return this.fatal("Python failed again and again, so it was not restarted", "reload the page; your saved data is kept");
    }
    this.boot({ lost });
  }

  /** Terminate the worker and forget everything that was waiting on it. */
  stopWorker() {
    for (const timer of ["watchdog", "stepWatchdog", "answerTimer"]) clearTimeout(this[timer]);
    this.worker?.terminate();
    this.worker = null;
    this.isReady = false;
    this.shim.abortAll();
    for (const { reject } of this.requests.values()) reject(new Error("the worker was restarted"));
    this.requests.clear();
    this.stepEnded();
    this.pending = null; // its transaction died with the worker (the next one reports it discarded)
  }

  // --- one writer across tabs -------------------------------------------------------------------

  /** Another tab asks for the database: save what the worker sent, stop it, stop writing. */
  async yieldTo() {
    if (!this.writer) return;
    if (this.running) {
      this.abort();
      await Promise.race([new Promise((resolve) => { const off = this.on("turn_end", () => (off(), resolve())); }), sleep(HANDOVER_WAIT_MS)]);
    }
    // A round trip: every snapshot the worker posted before it has now been queued for saving.
    if (this.worker && this.isReady) await Promise.race([this.request({ type: "ping" }).catch(() => {}), sleep(1500)]);
    await saves.flush();
    this.standDown(false);
  }

  /** This tab no longer writes (another tab took over); `forced` when it did not ask first. */
  standDown(forced) {
    this.writer = false;
    const running = this.running;
    this.stopWorker();
    if (running) {
      this.emit({ type: "error", kind: "tab", message: "The app was opened in another tab, which now holds the database, so this request was stopped.", hint: "committed steps are saved" });
      this.turnEnded({ type: "turn_end", reason: "aborted", steps: 0, input_tokens: 0, output_tokens: 0 });
    }
    if (this.readyHooks.settled) this.newReady();
    this.emit({ type: "tab_conflict", state: "taken-over", forced });
  }

  /** Use the app in this tab: the other tab saves and stands down, and this one starts from what it saved. */
  async takeOver() {
    if (this.writer && !this.resuming) return true;
    if (!(await this.lock.takeOver())) throw new Error("the other tab did not let go of the database");
    await this.resume();
    return true;
  }

  /** This tab holds the lock now: start from what the other tab saved (once, however it came). */
  resume() {
    if (!this.writer) {
      this.writer = true;
      this.resuming = (async () => {
        this.fatalError = false;
        this.spawn();
        await this.readSaved();
        this.open();
        this.emit({ type: "conversation", log: this.log, reason: "takeover" });
        this.emit({ type: "tab_conflict", state: "resolved" });
        await this.ready;
      })().finally(() => (this.resuming = null));
    }
    return this.resuming ?? Promise.resolve();
  }

  // --- messages from the worker ------------------------------------------------------------

  receive(message) {
    clearTimeout(this.answerTimer); // the worker is alive
    this.unanswered = null;
    switch (message.type) {
      case "fetch":
      case "fetch_abort":
        return this.shim.handle(message);
      case "snapshot":
        return void this.persist(message);
      case "boot_snapshot":
        // Never kept from the agent's worker: model code may run in it, and a snapshot is
        // code. Snapshots come from a worker of their own (snapshotSoon).
        return;
      case "booted":
        this.booted = true;
        if (message.snapshot === "wanted") this.snapshotWanted = message.schema;
        break;
      case "ready":
        this.isReady = true;
        if (this.snapshotWanted) this.snapshotSoon(this.snapshotWanted);
        this.snapshotWanted = null;
        this.limits = { timeout: message.timeout ?? this.limits.timeout, memoryLimit: message.memoryLimit ?? this.limits.memoryLimit };
        this.readyHooks.resolve(message);
        this.emit(message);
        return this.drainSoon();
      case "configured":
        this.limits = { timeout: message.timeout ?? this.limits.timeout, memoryLimit: message.memoryLimit ?? this.limits.memoryLimit };
        break;
      case "fatal":
        return this.fatal(message.message, message.hint);
      case "storage_damaged":
        // The worker could not read what the page sent: keep the page's copy of it.
        if (message.what === "database") this.lastDb = null;
        if (message.what === "conversation") this.conversation = null;
        return void this.keepDamaged(message.what, this.sent?.[message.what], `${message.message}${KEPT}`);
      case "worker_broken":
        return this.restart(message.reason === "memory" ? "memory" : "crash", message.message);
      case "signal":
        this.executing = message.signal === "execution";
        if (this.executing) this.stepStarted(message.step);
        break;
      case "assistant_reply":
        this.current = message.code?.trim() ? { step: message.step, message: message.message, code: message.code } : null;
        break;
      case "validation_failed":
      case "malformed_reply":
        this.current = null;
        break;
      case "execution_result":
        this.executing = false;
        this.current = null;
        this.stepEnded();
        break;
      case "approval_required":
        this.executing = false;
        this.stepEnded();
        this.pending = message;
        break;
      case "approval_decision":
      case "pending_discarded":
        if (this.pending?.step === message.step) this.pending = null;
        break;
      case "changes":
        if (message.status !== "pending" && this.pending?.step === message.step) this.pending = null;
        break;
      case "turn_end":
        return this.turnEnded(message);
      case "error":
        if (message.request) this.settle(message, new Error(message.hint ? `${message.message} (${message.hint})` : message.message));
        if (TURN_COMMANDS.has(message.command)) this.refused(message);
        break;
    }
    if (REPLIES.has(message.type)) this.settle(message, null);
    this.emit(message);
  }

  /** Save a snapshot; `saved` only once IndexedDB reports the write durable. */
  async persist(snapshot) {
    if (!this.writer) return; // another tab holds the database now
    const problem = snapshotProblem(snapshot);
    if (problem) {
      this.emit({ type: "error", kind: "protocol", message: `The page refused to save what Python sent: ${problem}.`, hint: "nothing from it was saved; reload the page if this happens again" });
      return;
    }
    const patch = { log: this.log, queue: this.queue.map((q) => q.text) };
    if (snapshot.conversation) patch.conversation = this.conversation = snapshot.conversation;
    if (snapshot.db) patch.db = this.lastDb = snapshot.db;
    // Queue the save before any await, so saves land in the order the snapshots came.
    const saving = this.storageBroken ? Promise.reject(this.storageBroken) : saves.save(this.schema, patch, { allowed: () => this.writer });
    if (snapshot.db) await this.replica.load(snapshot.db).catch((error) => console.error("py-agent: the replica could not open the database", error));
    try {
      await saving;
    } catch (error) {
      if (!this.writer) return;
      if (!this.warnedUnsaved) {
        this.warnedUnsaved = true;
        this.emit({
          type: "error",
          kind: "storage",
          message: `Your changes could not be saved in this browser (${error?.message || error}).`,
          hint: "they stay in this tab while it is open: download the database (Download .sqlite) before closing it",
        });
      }
      return;
    }
    this.emit({ type: "saved", reason: snapshot.reason, db: Boolean(snapshot.db), step: snapshot.step });
    if (snapshot.db && this.importing !== undefined && snapshot.reason === "commit" && snapshot.step === this.importing) {
      this.importing = undefined;
      this.emit({ type: "notice", message: `Imported a database with ${describeCounts(Object.fromEntries(this.replica.tables().map(({ name, count }) => [name, count])))}.` });
    }
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
    clearTimeout(this.answerTimer);
    this.setRunning(false);
    const turn = this.turn;
    this.turn = null;
    turn?.resolve(error);
    this.drainSoon();
  }

  turnEnded(message) {
    clearTimeout(this.watchdog);
    clearTimeout(this.answerTimer);
    this.stepEnded();
    this.current = null;
    if (message.reason !== "paused") this.pending = null;
    this.setRunning(false);
    this.emit(message);
    const turn = this.turn;
    this.turn = null;
    turn?.resolve(message);
    this.drainSoon();
  }

  // --- the time limit of a step ------------------------------------------------------------------

  stepStarted(step) {
    this.stepEnded();
    const at = Date.now();
    const timeout = this.limits.timeout;
    this.step = { step, at, timer: setTimeout(() => this.timeUp(step), timeout * 1000) };
    this.emit({ type: "step_started", step, at, timeout });
  }

  stepEnded() {
    if (!this.step) return;
    clearTimeout(this.step.timer);
    clearTimeout(this.stepWatchdog);
    const { step, at } = this.step;
    this.step = null;
    this.emit({ type: "step_ended", step, ms: Date.now() - at });
  }

  /** The step ran past its limit: interrupt it (StepTimeout), or restart Python if it will not stop. */
  timeUp(step) {
    if (this.step?.step !== step || !this.executing || !this.worker) return;
    if (this.views && Atomics.load(this.views.executing, 0) === 1) {
      Atomics.store(this.views.interrupt, 0, SIGALRM);
      clearTimeout(this.stepWatchdog);
      this.stepWatchdog = setTimeout(() => this.step?.step === step && this.restart("timeout"), INTERRUPT_GRACE_MS);
    } else {
      this.restart("timeout"); // no shared memory: the only way to stop a busy worker
    }
  }

  // --- commands ----------------------------------------------------------------------------

  request(message, transfer = []) {
    if (!this.worker) return Promise.reject(new Error(this.writer ? "Python is not running" : NOT_HERE));
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

  /** Post a command that starts a turn; resolves with its turn_end (or the error event if refused). */
  startTurn(message, transfer = []) {
    this.setRunning(true);
    const done = new Promise((resolve) => (this.turn = { resolve }));
    this.worker.postMessage(message, transfer);
    // A live worker answers at once (the turn's first event, or a refusal).
    this.unanswered = message;
    clearTimeout(this.answerTimer);
    this.answerTimer = setTimeout(() => this.running && this.restart("crash", "it did not answer"), ANSWER_MS);
    return done;
  }

  requireWriter() {
    if (!this.writer) throw new Error(NOT_HERE);
  }

  /**
   * Send a message; resolves with its turn's turn_end event (or the error event if it was
   * refused). While Python starts, a turn runs or a step waits for a decision, the message
   * is queued (`queued`), kept across reloads, and sent when the agent is free (`queue_sent`).
   */
  async send(text) {
    text = String(text ?? "").trim();
    if (!text) throw new Error("the message is empty");
    this.requireWriter();
    if (!this.isReady || this.running || this.pending || this.queue.length) {
      const queued = this.enqueue(text);
      this.saveQueue();
      this.drainSoon();
      return queued;
    }
    return this.startTurn({ type: "send", text });
  }

  enqueue(text) {
    return new Promise((resolve, reject) => {
      this.queue.push({ text, resolve, reject });
      const reason = this.pending ? "after your decision" : this.running ? "when the current request is done" : "when Python is ready";
      this.emit({ type: "queued", text, reason });
    });
  }

  /** Forget the queued messages (they are not sent). */
  clearQueue() {
    for (const { text, resolve } of this.queue.splice(0)) resolve({ type: "unqueued", text });
    this.saveQueue();
  }

  saveQueue() {
    if (this.writer && !this.storageBroken) saves.save(this.schema, { queue: this.queue.map((q) => q.text) }, { allowed: () => this.writer }).catch(() => {});
  }

  drainSoon() {
    setTimeout(() => this.drain()); // after the listeners of the event that freed the agent
  }

  drain() {
    if (!this.queue.length || !this.isReady || this.running || this.pending || !this.writer || this.fatalError) return;
    const { text, resolve, reject } = this.queue.shift();
    this.saveQueue();
    this.emit({ type: "queue_sent", text });
    this.startTurn({ type: "send", text }).then(resolve, reject);
  }

  /** Decide the step that waits: `remember` approves the rest of the conversation's steps too. */
  async decide(approved, { remember = false } = {}) {
    this.requireWriter();
    await this.ready;
    if (this.running) throw new Error("the agent is busy; decide once the current request is done");
    return this.startTurn({ type: "decide", approved: Boolean(approved), remember: Boolean(remember) });
  }

  /** Stop the turn: interrupt running code, or end the turn at its next await. */
  stop() {
    return this.executing ? this.interrupt() : this.abort();
  }

  abort() {
    if (!this.running || !this.worker) return false;
    this.worker.postMessage({ type: "abort" });
    this.watch(ABORT_GRACE_MS, "unresponsive");
    return true;
  }

  interrupt() {
    if (!this.running || !this.worker) return false;
    if (this.views) {
      // Raise the flag only while code runs: a late flag would land in the event loop.
      if (Atomics.load(this.views.executing, 0) === 1) Atomics.store(this.views.interrupt, 0, SIGINT);
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
    this.requireWriter();
    await this.ready;
    this.log = [];
    this.pending = null;
    const result = await this.request({ type: "reset" });
    this.emit({ type: "reset" });
    return result;
  }

  /** Start an empty conversation (or continue `conversation`, with its `log`); the database is kept. */
  async newConversation({ conversation = null, log = [] } = {}) {
    this.requireWriter();
    await this.ready;
    if (this.running) throw new Error("the agent is busy; start a new conversation once the current request is done");
    const previous = this.log;
    this.log = Array.isArray(log) ? log.filter((event) => !eventProblem(event)) : [];
    try {
      await this.request({ type: "new_conversation", conversation });
    } catch (error) {
      this.log = previous;
      throw error;
    }
    this.pending = null;
    this.emit({ type: "conversation", log: this.log, reason: "new" });
    return this.log;
  }

  /** Undo the last committed turn (or `point`); resolves with the new history. */
  async undo(point) {
    this.requireWriter();
    await this.ready;
    return this.request(point === undefined || point === null ? { type: "undo" } : { type: "undo", point });
  }

  /** Bring the database back to how it was right after history point `point`. */
  async restore(point) {
    this.requireWriter();
    await this.ready;
    return this.request({ type: "restore", point });
  }

  async history() {
    await this.ready;
    return (await this.request({ type: "history" })).points;
  }

  async exportDb() {
    await this.ready;
    return (await this.request({ type: "export" })).db;
  }

  /**
   * Import a database file. It is checked here (an SQLite file at all) and in Python
   * (against the app's schema), then waits for a decision like any write: resolves
   * with the `approval_required` event (decide() it), or rejects with the reason.
   */
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
    this.requireWriter();
    await this.ready;
    if (this.running || this.pending) throw new Error("the agent is busy; import once the current request is done and nothing waits for a decision");
    const errors = [];
    const off = this.on("error", (event) => errors.push(event));
    const copy = bytes.slice();
    const end = await this.startTurn({ type: "import", db: copy }, [copy.buffer]).finally(off);
    if (end.type === "error" || end.reason === "error" || !this.pending) {
      const error = end.type === "error" ? end : errors.at(-1);
      throw new Error(error?.message ?? "the file was not imported");
    }
    this.importing = this.pending.step;
    return this.pending;
  }

  /** Tests only (?test): run Python in the worker outside the agent; sets `result`. */
  async debug(code) {
    if (!this.testHooks) throw new Error("test hooks are off (open the page with ?test)");
    await this.ready;
    const reply = await this.request({ type: "debug", code });
    if (!reply.ok) throw new Error(reply.value);
    return reply.value;
  }

  /** Tests only: run the default export of a same-origin module in the worker, with its global. */
  async debugJs(url) {
    if (!this.testHooks) throw new Error("test hooks are off (open the page with ?test)");
    await this.ready;
    const reply = await this.request({ type: "debug_js", url });
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

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function describeCounts(tables) {
  const entries = Object.entries(tables || {});
  const rows = entries.reduce((sum, [, n]) => sum + n, 0);
  return `${entries.length} tables and ${rows.toLocaleString()} rows`;
}
