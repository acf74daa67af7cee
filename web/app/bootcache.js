// The page keeps the agent worker's boot snapshot (web/app/boot.js) in Cache Storage, so a
// later visit restores a booted Python instead of booting it again.
//
// The page, not the worker, holds it: the worker has no storage at all (wall.js), and a
// snapshot is code. The page offers the stored one to each new worker and keeps a new one
// only while that worker is still booting, before any model code can have run in it. The
// worker checks what it is offered (this build, this schema, a checksum) and boots from
// the packages when it is stale or damaged, then hands back a fresh one.
//
// AgentClient uses it in two places:
//   worker.postMessage({type: "init", ..., bootSnapshot: true}); offerBootSnapshot(worker);
//   on the worker's {type: "boot_snapshot", snapshot} before `booted`: keepBootSnapshot(snapshot)

// Not "py-agent-…": the service worker deletes those caches when a new build activates.
export const BOOT_CACHE = "py-agent.boot";
const KEY = "boot-snapshot";

function entryUrl(scope) {
  return new URL(KEY, scope).href;
}

/** The stored snapshot's bytes, or null (none, or Cache Storage is unavailable). */
export async function loadBootSnapshot(scope = document.baseURI) {
  try {
    if (!globalThis.caches) return null;
    const cache = await caches.open(BOOT_CACHE);
    const response = await cache.match(entryUrl(scope));
    return response ? await response.arrayBuffer() : null;
  } catch (error) {
    console.warn("py-agent: the boot snapshot could not be read", error);
    return null;
  }
}

/** Read the stored snapshot and give it to a new worker (transferred, not copied). */
export async function offerBootSnapshot(worker, scope = document.baseURI) {
  const snapshot = await loadBootSnapshot(scope);
  worker.postMessage({ type: "boot_snapshot", snapshot }, snapshot ? [snapshot] : []);
}

/** Keep a snapshot a booting worker made, replacing the one stored. */
export async function keepBootSnapshot(snapshot, scope = document.baseURI) {
  try {
    if (!globalThis.caches || !(snapshot instanceof ArrayBuffer)) return false;
    const cache = await caches.open(BOOT_CACHE);
    await cache.put(entryUrl(scope), new Response(snapshot, { headers: { "Content-Type": "application/octet-stream" } }));
    return true;
  } catch (error) {
    // A full disk or a private window: the next visit boots from the packages again.
    console.warn("py-agent: the boot snapshot could not be kept", error);
    return false;
  }
}

/** Forget the stored snapshot (the next boot makes a new one). */
export async function dropBootSnapshot(scope = document.baseURI) {
  if (!globalThis.caches) return;
  const cache = await caches.open(BOOT_CACHE);
  await cache.delete(entryUrl(scope));
}
