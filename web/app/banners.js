// Banners under the header for what concerns the whole page, not one message: another tab
// holds the database, saved state was damaged, Python was lost and restored, boot failed.
// One banner per id; showing an id again replaces its text and buttons.

import { el } from "./grid.js";

export class Banners {
  constructor(root) {
    this.root = root;
    this.items = new Map();
  }

  has(id) {
    return this.items.has(id);
  }

  /** `kind` is "ok" | "warn" | "error"; `actions` are [{label, run}]. */
  show(id, kind, message, actions = []) {
    const buttons = actions.map(({ label, run }) => {
      const button = el("button", { type: "button", class: "ghost small" }, label);
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await run();
        } finally {
          button.disabled = false;
        }
      });
      return button;
    });
    // Errors interrupt a screen reader (role=alert); the rest wait their turn (role=status).
    const banner = el("div", { class: `banner ${kind}`, "data-banner": id, role: kind === "error" ? "alert" : "status" }, el("p", {}, message), el("div", { class: "banner-actions" }, ...buttons));
    const old = this.items.get(id);
    if (old) old.replaceWith(banner);
    else this.root.append(banner);
    this.items.set(id, banner);
    return banner;
  }

  hide(id) {
    this.items.get(id)?.remove();
    this.items.delete(id);
  }
}
