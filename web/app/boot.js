// How the agent worker gets Python ready (issue 13), used by worker.js's boot():
//
//   * from a memory snapshot of an earlier boot, when the page offers one made by this build
//     for this schema (the page keeps it in Cache Storage: bootcache.js);
//   * otherwise from the site's packages (wheels/site-packages.zip and the wheels with
//     compiled code).
//
// A boot from the packages does not make the snapshot itself: that (a warm-up, then a copy
// of the heap) would keep the person waiting on a first visit. Once the agent is ready the
// page starts a second worker, in the background, that boots the same way with
// `makeSnapshot`, warms up and hands the snapshot over for the next visit (bootcache.js).
// The snapshot is taken after the imports, the app's schema and the warm-up, before anything
// of a visit exists (database, conversation, settings, the page's JS functions): the worker
// that makes it never opens a database or runs model code.
//
// Pyodide 314's own snapshots fail once SQLAlchemy or pydantic are imported. What does not
// survive, and what this file does about it:
//   1. Memory size. restoreSnapshot copies the heap into memory without growing it (this
//      build ignores INITIAL_MEMORY), so a heap over the initial 30 MB ends in "offset is out
//      of bounds". Here the memory is grown and the heap written before Pyodide restores.
//   2. Extension modules. pydantic_core's .so lives partly outside the heap: its wasm
//      instance and its function-table slots. A restored heap calls into slots that do not
//      exist ("table index is out of bounds"). Here every .so is loaded before Python starts,
//      at the same point of both boots, so it gets the same memory base and table slots.
//   3. Files. The file system is not in the heap, but the heap remembers it (zipimport's
//      table of contents, import caches). Both boots write the same files before Python
//      starts: the site bundle, imported in place, and the unpacked compiled wheels.
//   4. Pyodide's `loadedPackages` object. makeMemorySnapshot refuses to run when it is not
//      empty ("Unexpected hiwire entry at index 6"); it is emptied for that moment.
// Hash seeds stay those of the boot that made the snapshot; `random` is reseeded after a
// restore (py_agent/browser/glue.py).
import { loadPyodide } from "./pyodide/pyodide.mjs";

const MAGIC = "PYAGSNAP";
const FORMAT = 1;
const PAGE = 16384; // zero pages of the heap are not stored (about a third of it)
const SITE_ZIP = "/lib/site-packages.zip";

/**
 * Boot Python. Returns `{pyodide, from: "snapshot" | "packages", snapshot, rejected}`:
 * `snapshot` is a new snapshot to keep (a Uint8Array) when this boot made one, `rejected`
 * says why an offered snapshot was not used ("stale", "corrupt: …", "failed: …").
 *
 * @param {object} o
 * @param {URL} o.base         the site's root
 * @param {object} o.manifest  wheels/manifest.json
 * @param {string} o.schema    the app's schema module (imported before the snapshot)
 * @param {Promise<ArrayBuffer|null>} o.offered  the stored snapshot, if the page has one
 * @param {boolean} o.makeSnapshot  warm up and make a snapshot (the background worker's boot)
 * @param {(stage: string, message: string) => void} o.report  boot progress
 */
export async function bootPython({ base, manifest, schema, offered, makeSnapshot = false, report }) {
  const t0 = performance.now();
  const timings = {}; // ms since the call, for the benchmark
  const mark = (name) => (timings[name] = Math.round(performance.now() - t0));
  const wheels = new URL("wheels/", base);
  const indexURL = new URL("pyodide/", base).href;
  // Everything a boot needs from the network starts now, in parallel.
  const createModule = import(new URL("pyodide.asm.mjs", indexURL).href).then((m) => m.default);
  const site = fetchSite(wheels, manifest.boot);
  site.then(() => mark("site"), () => {}); // fetched, its .so files compiled
  const stored = await offered;
  mark("offered");
  let rejected = null;
  if (stored) {
    const checked = readSnapshot(stored, { key: manifest.boot.key, schema, agent: navigator.userAgent });
    if (checked.problem) {
      rejected = checked.problem;
    } else {
      report("snapshot", "Restoring Python");
      try {
        mark("checked");
        const pyodide = await start({ indexURL, createModule, site, snapshot: checked });
        mark("restored");
        const glue = pyodide.pyimport("py_agent.browser.glue");
        glue.after_restore(schema);
        glue.destroy();
        mark("python");
        // Largest moment: the stored snapshot, Python's memory and the site's files at once.
        const peak = stored.byteLength + pyodide._module.HEAP8.length + (await siteBytes(site));
        return { pyodide, from: "snapshot", snapshot: null, rejected: null, timings, peak };
      } catch (error) {
        rejected = `failed: ${String(error?.message || error).split("\n")[0].slice(0, 300)}`;
        console.warn(`py-agent: the boot snapshot did not restore (${rejected}); booting from the packages`);
      }
    }
  }
  report("runtime", "Loading Python");
  const pyodide = await start({ indexURL, createModule, site });
  mark("pyodide");
  report("packages", "Installing packages");
  pyodide.runPython(`import sys\nsys.path.insert(1, ${JSON.stringify(SITE_ZIP)})`);
  checkImports(pyodide, manifest.imports || []);
  mark("imports");
  report("imports", "Loading the schema");
  const glue = pyodide.pyimport("py_agent.browser.glue");
  glue.prepare_boot(schema, makeSnapshot); // the warm-up only for a snapshot
  glue.destroy();
  mark("schema");
  let snapshot = null;
  if (makeSnapshot) {
    try {
      snapshot = snapshotOf(pyodide, { key: manifest.boot.key, schema, agent: navigator.userAgent });
    } catch (error) {
      console.warn(`py-agent: no boot snapshot was made (${error.message})`);
    }
    mark("snapshot");
  }
  const peak = (snapshot?.length || 0) + pyodide._module.HEAP8.length + (await siteBytes(site));
  return { pyodide, from: "packages", snapshot, rejected, timings, peak };
}

// --- the site's packages ------------------------------------------------------------------

/** Bytes of the site's files held in memory (the file system keeps the fetched buffers). */
async function siteBytes(site) {
  const { zip, files } = await site;
  return zip.length + files.reduce((sum, file) => sum + file.data.length, 0);
}

/** Fetch the site bundle and the compiled wheels; compile their .so files while Python loads. */
async function fetchSite(wheels, boot) {
  const bytes = (name) =>
    fetch(new URL(name, wheels)).then((response) => {
      if (!response.ok) throw new Error(`wheels/${name}: HTTP ${response.status}`);
      return response.arrayBuffer().then((buffer) => new Uint8Array(buffer));
    });
  const [zip, ...unpacked] = await Promise.all([bytes(boot.zip), ...boot.unpack.map(bytes)]);
  const files = [];
  const dynlibs = [];
  for (const wheel of unpacked) {
    for (const member of readStoredZip(wheel)) {
      files.push(member); // the .so too: the import system looks for the file
      if (member.name.endsWith(".so")) dynlibs.push({ name: member.name, module: WebAssembly.compile(member.data) });
    }
  }
  for (const lib of dynlibs) lib.module = await lib.module;
  return { zip, files, dynlibs };
}

/** The members of a zip whose members are stored, not compressed (as the build writes them). */
export function readStoredZip(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = bytes.length - 22;
  while (end >= 0 && view.getUint32(end, true) !== 0x06054b50) end--;
  if (end < 0) throw new Error("not a zip file");
  const members = [];
  const decoder = new TextDecoder();
  let entry = view.getUint32(end + 16, true);
  for (let i = view.getUint16(end + 10, true); i > 0; i--) {
    const method = view.getUint16(entry + 10, true);
    const size = view.getUint32(entry + 20, true);
    const nameLength = view.getUint16(entry + 28, true);
    const skip = nameLength + view.getUint16(entry + 30, true) + view.getUint16(entry + 32, true);
    const local = view.getUint32(entry + 42, true);
    const name = decoder.decode(bytes.subarray(entry + 46, entry + 46 + nameLength));
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    if (method !== 0) throw new Error(`${name} is compressed; the build stores every member`);
    if (!name.endsWith("/")) members.push({ name, data: bytes.subarray(start, start + size) });
    entry += 46 + skip;
  }
  return members;
}

/**
 * loadPyodide() with the site in place before Python starts (the same way whether or not
 * a snapshot is restored: see 2. and 3. at the top), and the snapshot's heap written.
 */
async function start({ indexURL, createModule, site, snapshot = null }) {
  const { zip, files, dynlibs } = await site;
  const create = await createModule;
  const createPyodideModule = async (settings) => {
    let failure = null;
    settings.preRun = [
      ...settings.preRun,
      (Module) => {
        Module.addRunDependency("py-agent-site");
        installSite(Module, { zip, files, dynlibs })
          .catch((error) => (failure = error))
          .finally(() => Module.removeRunDependency("py-agent-site"));
      },
    ];
    const Module = await create(settings);
    if (failure) throw failure;
    if (snapshot) writeHeap(Module, snapshot);
    return Module;
  };
  return loadPyodide({
    indexURL,
    createPyodideModule,
    // pydantic looks for plugins in every installed distribution's entry points the first
    // time a model is built: reading all that metadata (the email package included) was a
    // quarter of a second of the boot. The site installs no pydantic plugin.
    env: { PYDANTIC_DISABLE_PLUGINS: "__all__" },
    ...(snapshot ? { _loadSnapshot: snapshot.pyodide } : {}),
  });
}

async function installSite(Module, { zip, files, dynlibs }) {
  const FS = Module.FS;
  const sitePackages = Module.API.sitePackages;
  // canOwn: the files keep the fetched bytes instead of copies (nothing writes to them).
  FS.writeFile(SITE_ZIP, zip, { canOwn: true });
  for (const { name, data } of files) {
    const path = `${sitePackages}/${name}`;
    FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
    FS.writeFile(path, data, { canOwn: true });
  }
  // In a fixed order, before the runtime starts: memory comes from the same bump allocator
  // and the table grows from the same length in every boot.
  for (const { name, module } of dynlibs) {
    const path = `${sitePackages}/${name}`;
    const flags = { loadAsync: true, global: true, nodelete: true };
    Module.preloadedWasm[path] = await Module.loadWebAssemblyModule(module, flags, path, {});
    await Module.loadDynamicLibrary(path, flags); // registered under its path, as dlopen asks
  }
}

function checkImports(pyodide, names) {
  const failures = pyodide
    .runPython(
      `import importlib
failures = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures.append(f"{name} ({type(exc).__name__}: {exc})")
failures`,
      { globals: pyodide.toPy({ names }) },
    )
    .toJs();
  if (failures.length) {
    throw Object.assign(new Error(`These packages did not load: ${failures.join("; ")}`), {
      hint: "reload the page; if it happens again, rebuild the site with `python build.py build`",
    });
  }
}

// --- snapshots ------------------------------------------------------------------------------
//
// Layout: "PYAGSNAP", u32 length of the header JSON, the JSON (padded to 16 bytes), Pyodide's
// own snapshot with an empty heap (its header: build id, the JS references Python holds),
// then the heap's pages that are not all zeros. The JSON says which pages those are, what
// made the snapshot (the build's boot key, the schema) and a checksum of everything after it.

function snapshotOf(pyodide, { key, schema, agent }) {
  const Module = pyodide._module;
  const api = pyodide._api;
  // 4. above: the hiwire slot Pyodide expects to be an empty object during the snapshot.
  const loaded = Module.__hiwire_get(6) === pyodide.loadedPackages ? pyodide.loadedPackages : null;
  const packages = { ...(loaded || {}) };
  for (const name of Object.keys(packages)) delete loaded[name];
  const heap = Module.HEAPU8;
  const real = Module.HEAP8;
  api.config._makeSnapshot = true; // only checked by makeMemorySnapshot
  Module.HEAP8 = new Int8Array(0); // Pyodide's part without the heap: the heap is stored below
  let pyodidePart;
  try {
    pyodidePart = pyodide.makeMemorySnapshot();
  } finally {
    Module.HEAP8 = real;
    api.config._makeSnapshot = false;
    if (loaded) Object.assign(loaded, packages);
  }
  const words = new Uint32Array(heap.buffer, 0, heap.length >>> 2);
  const pageWords = PAGE >>> 2;
  const runs = []; // [first page, page count]
  for (let page = 0; page * pageWords < words.length; page++) {
    const from = page * pageWords;
    const to = Math.min(from + pageWords, words.length);
    let used = false;
    for (let i = from; i < to; i++) {
      if (words[i] !== 0) {
        used = true;
        break;
      }
    }
    if (!used) continue;
    const last = runs.at(-1);
    if (last && last[0] + last[1] === page) last[1]++;
    else runs.push([page, 1]);
  }
  const stored = runs.reduce((sum, [, count]) => sum + count, 0) * PAGE;
  const tail = new Uint8Array(pyodidePart.length + stored);
  tail.set(pyodidePart);
  let offset = pyodidePart.length;
  for (const [first, count] of runs) {
    const bytes = heap.subarray(first * PAGE, Math.min((first + count) * PAGE, heap.length));
    tail.set(bytes, offset);
    offset += count * PAGE;
  }
  const header = {
    format: FORMAT,
    key,
    schema,
    agent, // the browser that made it (a new version of it makes its own)
    created: new Date().toISOString(),
    heap: heap.length,
    page: PAGE,
    runs,
    pyodide: pyodidePart.length,
    packages,
    checksum: checksum(tail),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const jsonSpace = Math.ceil(json.length / 16) * 16;
  const out = new Uint8Array(12 + jsonSpace + 4 + tail.length);
  out.set(new TextEncoder().encode(MAGIC));
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  out.set(tail, 12 + jsonSpace + 4); // 12 + jsonSpace + 4 is a multiple of 16: Pyodide reads u32s
  return out;
}

/** Check a stored snapshot; returns {problem} or its parts. Never throws. */
export function readSnapshot(buffer, { key, schema, agent }) {
  try {
    const bytes = new Uint8Array(buffer);
    if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return { problem: "corrupt: not a snapshot" };
    const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
    if (12 + length > bytes.length) return { problem: "corrupt: cut short" };
    let header;
    try {
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + length)));
    } catch {
      return { problem: "corrupt: unreadable header" };
    }
    if (header.format !== FORMAT || header.key !== key || header.schema !== schema || header.agent !== agent) return { problem: "stale", header };
    const tail = bytes.subarray(12 + Math.ceil(length / 16) * 16 + 4);
    const pages = header.runs.reduce((sum, [, count]) => sum + count, 0);
    if (tail.length !== header.pyodide + pages * header.page) return { problem: "corrupt: wrong length", header };
    if (tail.byteOffset % 4 || checksum(tail) !== header.checksum) return { problem: "corrupt: checksum", header };
    return { header, pyodide: tail.subarray(0, header.pyodide), pages: tail.subarray(header.pyodide) };
  } catch (error) {
    return { problem: `corrupt: ${error.message}` };
  }
}

/** 1. above: grow the memory to the snapshot's size and write its heap. */
function writeHeap(Module, { header, pages }) {
  if (Module.HEAPU8.length < header.heap && !Module.growMemory(header.heap)) {
    throw new Error(`could not grow the memory to ${header.heap} bytes`);
  }
  const heap = Module.HEAPU8;
  let at = 0; // bytes written so far, in heap order
  let offset = 0; // in `pages`
  for (const [first, count] of header.runs) {
    heap.fill(0, at, first * header.page);
    const size = Math.min(count * header.page, header.heap - first * header.page);
    heap.set(pages.subarray(offset, offset + size), first * header.page);
    offset += count * header.page;
    at = first * header.page + size;
  }
  heap.fill(0, at);
  const loaded = Module.API.public_api?.loadedPackages;
  if (loaded) Object.assign(loaded, header.packages);
}

/** A Fletcher-style checksum over 32-bit words (the snapshot is tens of MB: SHA-256 is too slow). */
function checksum(bytes) {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  let a = 1;
  let b = 0;
  for (let i = 0; i < words.length; i++) {
    a = (a + words[i]) | 0;
    b = (b + a) | 0;
  }
  return `${(a >>> 0).toString(16)}-${(b >>> 0).toString(16)}-${words.length}`;
}
