// Setup project ("build sites" in playwright.config.ts; the specs that need these sites depend
// on it): the sites several specs share, built once per run with `py-agent build`, as a
// user would: the clinic example, and a throwaway app written here (a tool, an enum, no demo).
// Plus a documentation folder: a plain HTML page with the <py-agent-chat> snippet and the
// bookshop site (the suite's DIST, built by `python3 build.py build`) copied under agent/.
//
// PY_AGENT_E2E_REUSE_SITES=1 keeps sites that are already there (for re-running one spec).
import { test as setup } from "@playwright/test";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { DIST } from "./helpers";
import { CLINIC, DOCS, NOTES, SITES } from "./sites";

export const NOTES_APP = `"""Notes: a throwaway app written by the e2e suite (tests/e2e/sites.setup.ts)."""
import enum

from sqlalchemy import Enum, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from py_agent import tool


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))
    priority: Mapped[Priority] = mapped_column(Enum(Priority), default=Priority.LOW)


def seed(session):
    session.add_all([Note(text="buy milk"), Note(text="call Ada", priority=Priority.HIGH)])


@tool
def shout(text: str) -> str:
    """The text in capitals, with an exclamation mark."""
    return text.upper() + "!"


title = "Notes"
description = "A short list of notes, each with a priority."
tools = [shout]
suggestions = ["Which notes are urgent?"]
`;

export const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Bookshop guide</title>
  <style>
    body { font: 16px/1.5 Georgia, serif; max-width: 60rem; margin: 2rem auto; }
    py-agent-chat { --py-agent-accent: rgb(0, 119, 85); height: 40rem; }
  </style>
</head>
<body>
  <h1>The bookshop guide</h1>
  <p>Ask the bookshop's data anything, right here:</p>
  <script type="module" src="agent/embed.js"></script>
  <py-agent-chat src="agent/"></py-agent-chat>
</body>
</html>
`;

function fresh(dir: string): boolean {
  return process.env.PY_AGENT_E2E_REUSE_SITES === "1" && fs.existsSync(path.join(dir, "build.json"));
}

function pyAgentBuild(app: string, out: string, ...flags: string[]) {
  if (fresh(out)) return;
  execFileSync("python3", ["-m", "py_agent", "build", app, "--out", out, ...flags], { stdio: ["ignore", "inherit", "inherit"] });
}

setup("build the shared sites", async () => {
  setup.setTimeout(15 * 60_000); // the runtime kit is remade when py_agent changed
  fs.mkdirSync(SITES, { recursive: true });
  pyAgentBuild("examples/clinic/clinic", CLINIC);
  const source = path.join(SITES, "src");
  fs.mkdirSync(source, { recursive: true });
  fs.writeFileSync(path.join(source, "notes_e2e.py"), NOTES_APP);
  pyAgentBuild(path.join(source, "notes_e2e.py"), NOTES, "--embed-origin", "*");
  // The documentation folder: its own page, the bookshop site copied in (a docs site would
  // publish `py-agent build`'s output next to its pages the same way).
  fs.rmSync(DOCS, { recursive: true, force: true });
  fs.mkdirSync(DOCS, { recursive: true });
  fs.cpSync(path.resolve(DIST), path.join(DOCS, "agent"), { recursive: true, filter: (src) => !/\.(br|gz)$/.test(src) && !src.includes(`${path.sep}bench`) });
  fs.writeFileSync(path.join(DOCS, "guide.html"), DOCS_PAGE);
});
