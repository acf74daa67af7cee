// Model text as safe HTML: markdown rendered by marked, every result cleaned by DOMPurify
// before it touches the page, code coloured by highlight.js (Python and SQL only).
//
// Loaded on demand (transcript.js imports it when the first model message arrives), so
// none of these bytes are fetched while Python boots.

import { Marked } from "./vendor/marked.esm.js";
import DOMPurify from "./vendor/purify.es.mjs";
import hljs from "./vendor/highlight/core.min.js";
import python from "./vendor/highlight/python.min.js";
import sql from "./vendor/highlight/sql.min.js";

hljs.registerLanguage("python", python);
hljs.registerLanguage("sql", sql);
hljs.registerAliases(["py", "python3", "pycon"], { languageName: "python" });
hljs.registerAliases(["sqlite", "postgresql", "postgres"], { languageName: "sql" });

const markdown = new Marked({ gfm: true, breaks: false });

// What model text may become. No images (an image URL is a way to send data out of the
// page), no forms, no styles, nothing that runs: DOMPurify already drops scripts, event
// handlers and javascript: URLs; this list narrows it further to the tags markdown makes.
const ALLOWED_TAGS = [
  "p", "br", "hr", "strong", "em", "b", "i", "del", "s", "code", "pre", "blockquote", "a",
  "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th",
  "td", "span", "div", "kbd", "sub", "sup",
];
const PURIFY = {
  ALLOWED_TAGS,
  ALLOWED_ATTR: ["href", "title", "class", "align", "start", "colspan", "rowspan"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    // Links from a model open elsewhere and learn nothing about this page.
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** A DocumentFragment of sanitised HTML for `text` (markdown); code blocks highlighted. */
export function renderMarkdown(text) {
  const fragment = DOMPurify.sanitize(markdown.parse(String(text), { async: false }), PURIFY);
  for (const code of fragment.querySelectorAll("pre > code")) {
    const language = /language-(\w+)/.exec(code.className)?.[1];
    code.replaceChildren(highlight(code.textContent, language));
  }
  for (const table of fragment.querySelectorAll("table")) {
    // Wide tables scroll inside the message instead of widening the page.
    const wrapper = Object.assign(document.createElement("div"), { className: "md-table" });
    table.before(wrapper);
    wrapper.append(table);
  }
  return fragment;
}

/** A DocumentFragment of `code` coloured as `language` (python or sql), sanitised. */
export function highlight(code, language = "python") {
  const known = language && hljs.getLanguage(language) ? language : null;
  if (!known) return document.createTextNode(code);
  // highlight.js escapes the code it wraps; the sanitiser is a second guard.
  const html = hljs.highlight(code, { language: known, ignoreIllegals: true }).value;
  return DOMPurify.sanitize(html, { ALLOWED_TAGS: ["span"], ALLOWED_ATTR: ["class"], RETURN_DOM_FRAGMENT: true });
}
