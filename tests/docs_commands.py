"""The ``losszoo ...`` commands written in README.md and docs/*.md, as tests/test_docs.py runs them.

Collected: every line of a fenced or indented code block that starts with ``losszoo`` (also
after ``&&``, or ``torchrun ... -m losszoo``), with ``\\`` continuations joined and ``#``
comments dropped. Inline code spans of the prose (``losszoo train --loss``) are references to
a command, often with placeholders, not commands: they are not collected.

How a command is checked:

- every one must parse with the real argument parser (shell variables such as ``$dim`` read as
  ``1``; a placeholder such as ``...`` fails);
- a block's commands are also *run*, in order, in one scratch folder (so ``losszoo eval
  runs/cosface`` finds what the ``train`` above it wrote), each distinct command once, with
  :data:`TINY` appended: the last occurrence of an option wins, so a long run becomes a tiny
  one with the same options otherwise (a command without ``--output`` gets a folder of its
  own, so that two commands never share a default folder; an absolute ``--output`` moves into
  the scratch folder; one without ``--losses`` compares or tunes two losses, :data:`TINY_LOSSES`). Not run: ``torchrun`` lines, ``--help``, and commands
  naming a data folder, config file, loss module or run folder that does not exist
  (e.g. ``--data-root /data/CUB_200_2011``): those only parse;
- a block marked by the line ``<!-- docs-test: parse-only: REASON -->`` just above it only
  parses (e.g. it needs a plugin installed first); a block below
  ``<!-- make_docs: output of the command above -->`` is printed output, not commands.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PARSE_ONLY = re.compile(r"^<!--\s*docs-test:\s*parse-only:\s*(?P<reason>[^>]*?)\s*-->$")
OUTPUT = re.compile(r"^<!--\s*make_docs:\s*output")  # a printed block, not commands
FENCE = re.compile(r"^(\s*)```")
SHELL_VARIABLE = re.compile(r"\$\{?\w+\}?")

# Appended to the commands that train: one batch of one epoch, on the CPU. A batch of 80 holds
# every samples_per_class the shipped Omniglot preset sets (2, 4, 5, 8, 10, 16; `--losses all`
# runs them all); 2 per class need 40 training classes, also after a tune holds 20 % out.
_SMALL = ["--max-classes", "50", "--ks", "1", "--no-binary", "--device", "cpu"]
_TRAIN = [*_SMALL, "--batch-size", "80", "--dim", "8", "--epochs", "1", "--warmup-epochs", "0",
          "--batches-per-epoch", "1", "--no-progress", "--workers", "0"]
TINY = {"train": _TRAIN, "compare": [*_TRAIN, "--seeds", "1"], "tune": [*_TRAIN, "--trials", "1"],
        "eval": [*_SMALL, "--figure-queries", "2", "--figure-k", "2"]}
# A tune of N trials in compare --tune N becomes one trial.
TINY_TUNE = ["--tune", "1"]
# A command that compares or tunes every loss (no --losses) runs two, a classification and a
# pair loss: every loss goes through the same code, and all eight take most of a minute.
TINY_LOSSES = ["--losses", "normsoftmax,triplet"]
# Options whose value must exist on disk for the command to run (else it only parses).
PATH_OPTIONS = ("--data-root", "--config", "--loss-module", "--warm-start", "--weights")


@dataclass(frozen=True)
class DocCommand:
    """One ``losszoo`` command of a document: its arguments (after ``losszoo``), where it is
    written, and why it only parses (None: it runs)."""

    document: Path
    line: int
    argv: tuple[str, ...]
    parse_only: str | None

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def commands(document: Path) -> list[DocCommand]:
    """The document's commands, in order."""
    lines = document.read_text().splitlines()
    found: list[DocCommand] = []
    previous: str | None = None  # the last non-blank line outside a fenced block
    in_fence, reason, marker, output = False, None, None, False
    for number, line in enumerate(lines, 1):
        if FENCE.match(line):
            in_fence = not in_fence
            reason = marker if in_fence else None
            output = in_fence and previous is not None and OUTPUT.search(previous) is not None
            continue
        if output:
            continue
        if not line.strip():
            continue
        previous = line
        marked = PARSE_ONLY.search(line)
        marker = marked.group("reason") if marked else None
        in_code = in_fence or (line.startswith("    ") and not line.lstrip().startswith(("-", "*", "|")))
        if in_code:
            text = _joined(lines, number - 1)
            if text is not None:
                argv, how = _argv(text)
                if argv is not None:
                    found.append(DocCommand(document, number, argv, reason or how))
    return found


def _joined(lines: list[str], index: int) -> str | None:
    """The command starting on ``lines[index]`` with its continuation lines, or None."""
    if index and lines[index - 1].rstrip().endswith("\\"):
        return None  # a continuation line: read with its first line
    text = lines[index].strip().removeprefix("$ ")
    while text.endswith("\\") and index + 1 < len(lines):
        index += 1
        text = text[:-1] + " " + lines[index].strip()
    return text


def _argv(text: str) -> tuple[tuple[str, ...] | None, str | None]:
    """The arguments after ``losszoo`` (None if the text runs no losszoo command), and why the
    command only parses when that follows from its form (torchrun)."""
    text = SHELL_VARIABLE.sub("1", text)
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return None, None
    for index, word in enumerate(words):
        if word == "losszoo" and (index == 0 or words[index - 1] in ("&&", ";", "-m")):
            rest = words[index + 1:]
            rest = rest[:rest.index("&&")] if "&&" in rest else rest
            return tuple(rest), ("launched by torchrun" if index and words[index - 1] == "-m" else None)
    return None, None


def missing_path(argv: tuple[str, ...], cwd: Path) -> str | None:
    """The first file or folder the command names that does not exist (relative to ``cwd``)."""
    for option, value in zip(argv, argv[1:]):
        if option in PATH_OPTIONS and not (cwd / value).exists():
            return value
    if argv and argv[0] == "eval" and len(argv) > 1 and not argv[1].startswith("-") \
            and not (cwd / argv[1]).exists():
        return argv[1]
    return None
