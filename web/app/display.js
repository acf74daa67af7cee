// What model code shows with show() / chart(): the `display` event, rendered as a paged,
// sortable table or as a chart (Vega-Lite). The chart's data is one click away as a table,
// for people who cannot see the chart and for copying.

import { download, el, Grid, MemorySource } from "./grid.js";

/** A <figure> for one `display` event {kind, title, columns, rows, total, truncated, spec}. */
export function renderDisplay(event) {
  const columns = Array.isArray(event.columns) ? event.columns.map(String) : [];
  const rows = Array.isArray(event.rows) ? event.rows.filter(Array.isArray) : [];
  const title = event.title ? String(event.title) : event.kind === "chart" ? "Chart" : "Table";
  const total = Number.isFinite(event.total) ? event.total : rows.length;
  const counts = `${total.toLocaleString()} row${total === 1 ? "" : "s"}${event.truncated || total > rows.length ? ` · the first ${rows.length.toLocaleString()} shown` : ""}`;
  const figure = el("figure", { class: `display ${event.kind === "chart" ? "chart" : "table"}`, "data-display": event.kind || "table" });
  figure.append(el("figcaption", {}, el("span", { class: "display-title" }, title), el("span", { class: "muted small" }, counts)));
  const table = () => new Grid(new MemorySource(columns, rows), { name: title, caption: title, pageSize: 25, filter: rows.length > 25 }).element;

  if (event.kind !== "chart" || !event.spec || typeof event.spec !== "object") {
    figure.append(table());
    return figure;
  }

  const canvas = el("div", { class: "chart-canvas", role: "img", "aria-label": `Chart: ${title}` }, el("p", { class: "muted small" }, "Drawing the chart…"));
  const showData = el("button", { type: "button", class: "ghost small", "aria-expanded": "false" }, "Show data");
  const svg = el("button", { type: "button", class: "ghost small", disabled: true }, "Download SVG");
  const data = el("div", { class: "chart-data", hidden: true });
  showData.addEventListener("click", () => {
    if (!data.childElementCount) data.append(table());
    data.hidden = !data.hidden;
    showData.setAttribute("aria-expanded", String(!data.hidden));
    showData.textContent = data.hidden ? "Show data" : "Hide data";
  });
  figure.append(canvas, el("div", { class: "display-actions" }, showData, svg), data);

  import("./chart.js")
    .then(({ renderChart }) => {
      canvas.replaceChildren();
      return renderChart(canvas, event.spec);
    })
    .then((view) => {
      figure.dataset.drawn = "";
      svg.disabled = false;
      svg.addEventListener("click", async () => download(new Blob([await view.toSVG()], { type: "image/svg+xml" }), `${title.replace(/[^\w.-]+/g, "_")}.svg`));
    })
    .catch((error) => {
      canvas.replaceChildren(el("p", { class: "note warn" }, `The chart could not be drawn: ${error.message}. Its data is below.`));
      canvas.removeAttribute("role");
      data.hidden = false;
      if (!data.childElementCount) data.append(table());
    });
  return figure;
}
