// Charts from Vega-Lite specs (the `display` event's `spec`), drawn as SVG by Vega.
//
// Loaded only when a chart first appears: vega and vega-lite are ~260 KB compressed, too
// much for a boot that may never show a chart. The page's CSP has no 'unsafe-eval', so
// Vega's expressions run through vega-interpreter (no `new Function`), and a loader that
// refuses every URL keeps a spec from fetching data or images from anywhere.

let loading = null;

function script(path) {
  return new Promise((resolve, reject) => {
    const node = Object.assign(document.createElement("script"), { src: new URL(path, import.meta.url).href });
    node.onload = resolve;
    node.onerror = () => reject(new Error(`the chart library could not be loaded (${path})`));
    document.head.append(node);
  });
}

/** Vega, Vega-Lite and the CSP-safe expression interpreter, loaded once. */
export function loadVega() {
  loading ??= (async () => {
    await script("./vendor/vega.min.js"); // defines globalThis.vega
    await script("./vendor/vega-lite.min.js"); // reads globalThis.vega, defines globalThis.vegaLite
    const { expressionInterpreter } = await import("./vendor/vega-interpreter.js");
    return { vega: globalThis.vega, vegaLite: globalThis.vegaLite, expressionInterpreter };
  })();
  loading.catch(() => (loading = null)); // a failed load may be retried
  return loading;
}

/** Draw `spec` (Vega-Lite, data inline) into `container`; resolves with the Vega view. */
export async function renderChart(container, spec) {
  const outside = externalUrl(spec);
  if (outside) throw new Error(`charts use inline data only; this one asks for ${String(outside).slice(0, 80)}`);
  const { vega, vegaLite, expressionInterpreter } = await loadVega();
  const full = { width: "container", ...spec, autosize: { type: "fit-x", contains: "padding" } };
  const compiled = vegaLite.compile(full).spec;
  let refused = null;
  const loader = vega.loader();
  loader.sanitize = (uri) => {
    refused = uri;
    return Promise.reject(new Error(`charts use inline data only; refused ${String(uri).slice(0, 80)}`));
  };
  const view = new vega.View(vega.parse(compiled, null, { ast: true }), {
    expr: expressionInterpreter,
    loader,
    renderer: "svg",
    container,
    hover: true,
    logLevel: vega.Warn,
  });
  await view.runAsync();
  if (refused) throw new Error(`charts use inline data only; this one asks for ${String(refused).slice(0, 80)}`);
  return view;
}

/** The first `url` a spec names (data or images from elsewhere), or null. */
function externalUrl(value) {
  if (!value || typeof value !== "object") return null;
  for (const [key, inner] of Object.entries(value)) {
    if (key === "url" && typeof inner === "string") return inner;
    // Inline rows are data, not requests: a column may be called "url" (the loader's
    // sanitize still refuses every fetch, and the page's CSP every image).
    if (key === "values" || key === "datasets") continue;
    const found = externalUrl(inner);
    if (found) return found;
  }
  return null;
}
