// What the page accepts to keep: checks of the saved record (read back from IndexedDB)
// and of everything the worker asks the page to persist.
//
// The worker runs model code, so the page treats its messages as untrusted input:
// only plain JSON of the expected shape, and SQLite bytes, are ever saved. The
// same checks read a saved record back, so a damaged save (a record replaced by a
// string, a truncated file, a transcript entry of the wrong type) is named and set
// aside for download instead of breaking the page or silently becoming demo data.

const SQLITE_MAGIC = "SQLite format 3\0";
const MAX_DEPTH = 40;

/** What a person reads for each kind of damage (`storage_damaged {what, message}`). */
export const DAMAGE = {
  record: "The data this app saved in the browser could not be read (it is not in the form the app wrote), so the app started from its initial data.",
  database: "The saved database could not be read, so the app started from its initial data.",
  conversation: "The saved conversation could not be read, so a new one was started; your data is unchanged.",
  log: "Part of the saved transcript could not be read, so it is not shown; your data and the conversation are unchanged.",
  settings: "The saved settings could not be read, so the defaults are used. Open Settings to set them again.",
};
export const KEPT = " A copy of what could not be read is kept in this browser: download it before you reset anything.";

export function isPlainObject(value) {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** True for null, booleans, finite numbers, strings, and arrays/plain objects of them. */
export function isPlainJson(value, depth = 0) {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value);
  if (depth > MAX_DEPTH) return false;
  if (Array.isArray(value)) return value.every((item) => isPlainJson(item, depth + 1));
  if (!isPlainObject(value)) return false;
  return Object.values(value).every((item) => isPlainJson(item, depth + 1));
}

export function isSqlite(bytes) {
  return bytes instanceof Uint8Array && bytes.length >= 100 && new TextDecoder("latin1").decode(bytes.subarray(0, 16)) === SQLITE_MAGIC;
}

/** A conversation as `State.to_dict()` writes it (the worker checks the rest). */
export function isConversation(value) {
  return isPlainObject(value) && Array.isArray(value.messages) && value.messages.every(isPlainObject) && isPlainJson(value);
}

// Transcript events the page keeps, with the fields their renderers rely on.
const N = "number", S = "string", B = "boolean", O = "object", ANY = "any";
export const LOGGED_FIELDS = {
  user_message: { content: S },
  assistant_reply: { step: N, message: S, code: S },
  malformed_reply: { step: N, problem: S },
  reply_truncated: { step: N, reason: S },
  validation_failed: { step: N, message: S },
  execution_result: { step: N, output: S },
  display: { step: N, kind: S },
  tool_call: { step: N, name: S, status: S },
  changes: { step: N, tables: O, status: S },
  approval_required: { step: N, code: S, tables: O },
  approval_decision: { step: N, approved: B },
  history_point: { point: O },
  undone: { point: ANY, kind: S },
  error: { message: S },
  notice: { message: S },
  turn_end: { reason: S },
  pending_discarded: { step: N },
  worker_lost: { reason: S, message: S },
};

/** Why `event` is not a transcript event the page can keep, or null when it is. */
export function eventProblem(event) {
  if (!isPlainObject(event)) return "not an object";
  const fields = LOGGED_FIELDS[event.type];
  if (!fields) return `unknown type ${JSON.stringify(String(event.type)).slice(0, 40)}`;
  for (const [name, type] of Object.entries(fields)) {
    const value = event[name];
    if (type === ANY ? value === undefined : type === O ? !isPlainObject(value) : typeof value !== type) return `${event.type}.${name} is missing or not a ${type}`;
  }
  return isPlainJson(event) ? null : "holds something that is not plain JSON";
}

/** Why a `snapshot` from the worker must not be saved, or null when it may be. */
export function snapshotProblem(message) {
  if (typeof message.reason !== "string") return "it has no reason";
  if (message.conversation != null && !isConversation(message.conversation)) return "its conversation is not in the expected form";
  if (message.db !== undefined && !isSqlite(message.db)) return "its database is not an SQLite file";
  return null;
}

/**
 * Read a saved record back: `{db, conversation, log, queue, damaged: [{what, message, copy}]}`.
 * Whatever cannot be read is left out of the result and listed in `damaged` with a copy.
 */
export function readSaved(raw) {
  const out = { db: null, conversation: null, log: [], queue: [], damaged: [] };
  if (raw === undefined || raw === null) return out;
  const damage = (what, copy, detail = "") => out.damaged.push({ what, copy, message: `${DAMAGE[what]}${detail ? ` (${detail})` : ""}${KEPT}` });
  if (!isPlainObject(raw)) {
    damage("record", raw, `found ${describe(raw)} instead of a saved record`);
    return out;
  }
  if (raw.db != null) {
    if (isSqlite(raw.db)) out.db = raw.db;
    else damage("database", raw.db, raw.db instanceof Uint8Array ? "it is not an SQLite file" : `found ${describe(raw.db)} instead of a file`);
  }
  if (raw.conversation != null) {
    if (isConversation(raw.conversation)) out.conversation = raw.conversation;
    else damage("conversation", raw.conversation, `found ${describe(raw.conversation)} where a conversation was expected`);
  }
  if (raw.log != null) {
    if (!Array.isArray(raw.log)) damage("log", raw.log, `found ${describe(raw.log)} instead of a list of entries`);
    else {
      const problems = raw.log.map(eventProblem);
      out.log = raw.log.filter((_, i) => problems[i] === null);
      const bad = problems.filter(Boolean);
      if (bad.length) damage("log", raw.log, `${bad.length} of ${raw.log.length} entries: ${bad[0]}`);
    }
  }
  if (Array.isArray(raw.queue)) out.queue = raw.queue.filter((text) => typeof text === "string" && text.trim());
  return out;
}

function describe(value) {
  if (value === null) return "null";
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return `the text ${JSON.stringify(value.slice(0, 24))}${value.length > 24 ? "…" : ""}`;
  return typeof value === "object" ? `an object of type ${value?.constructor?.name ?? "unknown"}` : `a ${typeof value}`;
}

/** The bytes of a kept copy, for download: files as they were, anything else as JSON text. */
export function copyBytes(copy) {
  if (copy instanceof Uint8Array) return copy;
  if (copy instanceof ArrayBuffer) return new Uint8Array(copy);
  if (typeof copy === "string") return new TextEncoder().encode(copy);
  const text = JSON.stringify(copy, (_key, value) => (ArrayBuffer.isView(value) ? { bytes: Array.from(value) } : value), 2);
  return new TextEncoder().encode(text ?? String(copy));
}
