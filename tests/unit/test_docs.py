"""The docs name only what exists: every file, folder, image and `make` target they mention.

Checked: README.md, every docs/*.md and k8s/README.md. "The repository" is what git tracks plus
the new files it does not ignore (`git ls-files --cached --others --exclude-standard`), so a doc
may name a file added in the same change.

The rule, per kind of reference:

- Markdown links and images, `[text](target)` and `![alt](target)`: the target, without its
  `#anchor`, is resolved from the doc's own folder, as a Markdown viewer does, and must be a file
  or folder of the repository. Not checked: URLs (`https:`, `mailto:`), and targets that leave the
  repository (the wire contract, `../shared/PROTOCOL.md`, is kept beside it). An `#anchor` into a
  Markdown file of the repository (or into the doc itself) must be one of its headings, slugged as
  GitHub does.
- Inline code (`...`, outside fenced blocks): each word of it that looks like a path is checked.
  A word looks like a path when its first part (up to `/`) is a top-level file or folder of the
  repository (`service/...`, `Makefile`), or it ends with `/`, or with a file extension such as
  `.py`, `.md` or `.png` (FILE_EXTENSIONS). Not checked: URLs, absolute paths (`/readyz`, `/tmp`:
  paths on a server or in a container), paths that leave the repository (`../shared/...`: inline
  code is read from the repository's root), words with a placeholder (`<time>`, `{room}`, `$VAR`,
  `*`, `...`), settings (`NAME=value`), and the files other programs keep (ELSEWHERE: a Redis
  Cluster server's `nodes.conf`). Such a word must be a file or folder of the repository, from
  its root, from the doc's folder, or as the trailing parts of a repository path (a sentence about
  `service/` names `realtime/validation.py`; k8s/README.md names `base/node/hpa.yaml`).
- Made at run time or by the reader, never committed: a path that git ignores (run/, .venv/,
  test-results/, bench-results/, soak-results/, profile-results/, loadtests/results/, .env,
  k8s/**/secrets.env: see .gitignore) is not checked, from the root or from the doc's folder.
- `make <target>` in code (inline code and fenced blocks, comments cut off): the target must be
  one of the Makefile's. Words between `make` and the target that set a variable (`NODES=5`) or
  an option are skipped. Prose is not read for targets: "make" is an English word.

Fenced blocks are not read for paths: they hold commands whose arguments are often not the
repository's (image names, hosts, files the reader creates). The README stays short (at most
README_MAX_LINES lines) and keeps the two commands it starts with.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 260
FILE_EXTENSIONS = {
    ".py", ".md", ".png", ".svg", ".sh", ".yml", ".yaml", ".json", ".jsonl", ".lua", ".js",
    ".html", ".css", ".toml", ".lock", ".conf", ".template", ".txt", ".env", ".example", ".cfg",
    ".ini", ".csv", ".Containerfile",
}
ELSEWHERE = {"nodes.conf"}  # files of other programs: a Redis Cluster server's own state
PLACEHOLDER = re.compile(r"[<>{}*$…]|\.\.\.")
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "k8s" / "README.md"]


@cache
def repository() -> frozenset[str]:
    """Every file of the repository and every folder holding one, as paths from its root."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
        capture_output=True, text=True, check=True, timeout=60).stdout.split("\0")
    paths: set[str] = set()
    for name in filter(None, listed):
        if not (ROOT / name).exists():  # deleted in the work tree, not yet in the index
            continue
        parts = PurePosixPath(name).parts
        paths.update("/".join(parts[:end]) for end in range(1, len(parts) + 1))
    return frozenset(paths)


@cache
def top_level() -> frozenset[str]:
    return frozenset(path for path in repository() if "/" not in path)


def ignored(paths: list[str]) -> set[str]:
    """The paths git ignores (made at run time, or by the reader), existing or not."""
    if not paths:
        return set()
    result = subprocess.run(["git", "check-ignore", "--stdin", "-z"], cwd=ROOT,
                            input="\0".join(paths), capture_output=True, text=True, check=False,
                            timeout=60)
    assert result.returncode in (0, 1), result.stderr
    return set(filter(None, result.stdout.split("\0")))


def make_targets() -> set[str]:
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        rule = re.match(r"^([^\s:=#][^:=#]*?)\s*::?(?!=)", line)
        if rule:
            targets.update(name for name in rule.group(1).split() if not name.startswith("."))
    return targets


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, without punctuation, '-' for spaces."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = "".join(char for char in text.lower()
                   if char in " -_" or unicodedata.category(char)[0] in "LN")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    in_fence = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        heading = None if in_fence else HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            found.add(base if base not in counts else f"{base}-{counts[base]}")
            counts[base] = counts.get(base, 0) + 1
    return found


@dataclass
class Text:
    prose: str  # the doc without its fenced blocks
    code: list[str]  # inline code and fenced blocks' lines, comments cut off


def split(markdown: str) -> Text:
    prose: list[str] = []
    code: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            prose.append("")
        elif in_fence:
            code.append(re.split(r"(?:^|\s)#", line, maxsplit=1)[0])
            prose.append("")
        else:
            prose.append(line)
    text = "\n".join(prose)
    for paragraph in re.split(r"\n\s*\n", text):
        code.extend(span.group(2) for span in CODE_SPAN.finditer(paragraph))
    return Text(prose=text, code=code)


def inline_code(prose: str) -> list[str]:
    return [span.group(2) for paragraph in re.split(r"\n\s*\n", prose)
            for span in CODE_SPAN.finditer(paragraph)]


def path_words(code: str) -> list[str]:
    """The words of an inline code span that look like a path of the repository."""
    words = []
    for word in code.split():
        word = word.strip("\"'(),;[]")
        if (not word or "=" in word or "://" in word or word in ELSEWHERE
                or word.startswith(("/", "~", "-", "../"))):
            continue
        if PLACEHOLDER.search(word):
            continue
        first = word.split("/", 1)[0]
        if (first in top_level() or word.endswith("/")
                or PurePosixPath(word).suffix in FILE_EXTENSIONS):
            words.append(word)
    return words


def normal(path: PurePosixPath) -> str | None:
    """The path from the repository's root, or None if it leaves the repository."""
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return "/".join(parts)


def in_repository(word: str, folder: PurePosixPath) -> bool:
    name = word.rstrip("/")
    candidates = {normal(PurePosixPath(name)), normal(folder / name)} - {None}
    if candidates & repository():
        return True
    return any(path == name or path.endswith("/" + name) for path in repository())


def problems(doc: Path, markdown: str | None = None) -> list[str]:
    """Every reference in `doc` (or in `markdown`, read as if it were `doc`) that does not exist."""
    name = doc.relative_to(ROOT).as_posix()
    folder = PurePosixPath(name).parent
    text = split(doc.read_text() if markdown is None else markdown)
    found: list[str] = []
    unresolved: dict[str, str] = {}

    for link in LINK.finditer(text.prose):
        target = link.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # a URL
        path, _, anchor = target.partition("#")
        resolved = normal(folder / path) if path else name
        if resolved is None:
            continue  # outside the repository: ../shared/PROTOCOL.md
        if resolved not in repository():
            found.append(f"{name}: the link ({target}) points at {resolved}, which is not a file "
                         "or folder of the repository")
        elif anchor and resolved.endswith(".md") and anchor not in anchors(ROOT / resolved):
            found.append(f"{name}: the link ({target}) names the anchor #{anchor}, which is no "
                         f"heading of {resolved}")

    for code in inline_code(text.prose):
        for word in path_words(code):
            if not in_repository(word, folder):
                unresolved[word] = code
    made_at_run_time = ignored(sorted({candidate for word in unresolved
                                       for candidate in (word, str(folder / word))}))
    for word, code in unresolved.items():
        if word not in made_at_run_time and str(folder / word) not in made_at_run_time:
            found.append(f"{name}: `{code}` names {word}, which is no file or folder of the "
                         "repository (nor one git ignores as made at run time)")

    targets = make_targets()
    for code in text.code:
        words = code.split()
        for at, word in enumerate(words):
            if word.strip("`(") != "make":
                continue
            rest = [w for w in words[at + 1:] if "=" not in w and not w.startswith("-")]
            target = rest[0].strip("`),;") if rest else ""
            if re.fullmatch(r"[a-z][\w.-]*", target) and target not in targets:
                found.append(f"{name}: `{code.strip()}` runs make {target}, which is no target "
                             f"of the Makefile (its targets: {', '.join(sorted(targets))})")
    return found


@pytest.mark.parametrize("doc", documents(), ids=lambda doc: doc.relative_to(ROOT).as_posix())
def test_every_file_folder_and_make_target_a_doc_names_exists(doc):
    found = problems(doc)
    assert not found, "\n".join(found)


def test_the_readme_is_short_and_starts_a_newcomer_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    lines = readme.count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, more than {README_MAX_LINES}: move the rest to docs/")
    for command in ("make run", "make test"):
        assert command in readme, f"README.md does not contain `{command}`"
    assert readme.index("make run") < readme.index("\n## "), "README.md must start with `make run`"


def test_every_image_in_docs_is_shown_by_a_doc():
    shown = " ".join(doc.read_text() for doc in documents())
    for image in sorted((ROOT / "docs").glob("*.png")):
        assert f"({image.name})" in shown or f"(docs/{image.name})" in shown, (
            f"docs/{image.name} is shown by no doc")


def test_the_check_fails_on_what_does_not_exist():
    """The rules above, on a made-up doc: what is missing is named, what is allowed is not."""
    doc = ROOT / "docs" / "made-up.md"
    markdown = "\n".join([
        "See `service/store/health.py`, `realtime/validation.py`, `docs/soak.png`, `loadtests/`,",
        "`run/logs/`, `bench-results/<time>/summary.json`, `/readyz`, `NODES=5` and",
        "[the contract](../../shared/PROTOCOL.md), [ops](operating.md#settings),",
        "[home](https://example.com/x.md) and `make run NODES=5`.",
        "",
        "Missing: `service/fast_websocket.py`, `nowhere/`, ![chart](gone.png),",
        "[ops](operating.md#no-such-heading) and `make no-such-target`.",
        "",
        "```sh",
        "make bench PARTS=drops      # fenced: checked for targets",
        "make teleport",
        "cp nowhere.py elsewhere.py  # fenced: not checked for paths",
        "```",
    ])
    found = problems(doc, markdown)
    assert len(found) == 6, "\n".join(found)
    for missing in ("service/fast_websocket.py", "nowhere/", "docs/gone.png",
                    "#no-such-heading", "make no-such-target", "make teleport"):
        assert any(missing in problem for problem in found), (missing, found)
    assert all(problem.startswith("docs/made-up.md: ") for problem in found)
