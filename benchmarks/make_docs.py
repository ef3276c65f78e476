"""Rewrite the parts of the docs that the code produces, so they are never typed by hand.

- API signatures: a fenced block just below ``<!-- signature: dotted.name -->`` holds the
  callable's signature (no annotations), generated from the code;
- argument tables: the Markdown table just below ``<!-- arguments: dotted.name -->`` must list
  every argument of the callable in its first column (checked, not written: the meanings are
  prose);
- the quickstart's printed block: the fenced block just below
  ``<!-- make_docs: output of the command above -->`` is what the ``losszoo`` command of the
  bash block above it prints, run for real (``--no-progress`` added: the bars are transient).

    python benchmarks/make_docs.py                 # signatures and the quickstart's output
    python benchmarks/make_docs.py --signatures    # signatures only (no run)
    python benchmarks/make_docs.py --check         # exit 1 when a signature block is stale

tests/test_docs.py checks the signatures and the tables, and runs ``refresh_output`` on a copy
of the quickstart with a tiny override. The real quickstart run takes about 20 s on one CPU
thread; its numbers move whenever training changes, so rerun this after such a change.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
QUICKSTART = ROOT / "docs" / "quickstart.md"
# Markers stand on a line of their own (quoted in prose, inside backticks, they are not markers).
SIGNATURE = re.compile(r"^<!--\s*signature:\s*([\w.]+)\s*-->$", re.M)
ARGUMENTS = re.compile(r"^<!--\s*arguments:\s*([\w.]+)\s*-->$", re.M)
OUTPUT_MARK = "<!-- make_docs: output of the command above -->"
# CSI sequences (colours, cursor) and OSC ones (rich's file hyperlinks: ESC ] 8 ; ... ESC \).
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
WIDTH = 95  # signature lines
TERMINAL_COLUMNS = "100"


def resolve(target: str) -> object:
    """``package.module.name`` -> the object."""
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def signature_text(target: str) -> str:
    """``name(args...)`` without annotations, wrapped at WIDTH with aligned continuation lines."""
    function = resolve(target)
    signature = inspect.signature(function)
    bare = signature.replace(parameters=[p.replace(annotation=inspect.Parameter.empty)
                                         for p in signature.parameters.values()],
                             return_annotation=inspect.Signature.empty)
    name = target.rpartition(".")[2]
    return textwrap.fill(f"{name}{bare}", WIDTH, subsequent_indent=" " * (len(name) + 1),
                         break_long_words=False, break_on_hyphens=False)


def _blocks_after(pattern: re.Pattern[str], text: str) -> Iterator[tuple[str, int, int]]:
    """(target, start, end) of the fenced block body right below each marker."""
    for marker in pattern.finditer(text):
        fence = re.compile(r"\n```[^\n]*\n(.*?)\n```", re.S).match(text, marker.end())
        if fence is None:
            raise ValueError(f"no fenced block right below {marker.group(0)}")
        yield marker.group(1), fence.start(1), fence.end(1)


def signature_targets() -> list[tuple[Path, str]]:
    return [(path, target) for path in DOCUMENTS for target, _, _ in _blocks_after(SIGNATURE, path.read_text())]


def _normal(text: str) -> str:
    return re.sub(r"\s+", "", text)


def stale_signatures() -> list[tuple[Path, str]]:
    stale = []
    for path in DOCUMENTS:
        text = path.read_text()
        for target, start, end in _blocks_after(SIGNATURE, text):
            if _normal(text[start:end]) != _normal(signature_text(target)):
                stale.append((path, target))
    return stale


def refresh_signatures() -> list[Path]:
    """Rewrite every signature block; the files changed."""
    changed = []
    for path in DOCUMENTS:
        text = new = path.read_text()
        for target, start, end in reversed(list(_blocks_after(SIGNATURE, text))):
            new = new[:start] + signature_text(target) + new[end:]
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def argument_tables() -> list[tuple[Path, str, list[str], list[str]]]:
    """(document, target, names in the table's first column, the callable's arguments)."""
    found = []
    for path in DOCUMENTS:
        text = path.read_text()
        for marker in ARGUMENTS.finditer(text):
            rows = re.compile(r"\n\s*\n?((?:\|[^\n]*\n?)+)").match(text, marker.end())
            if rows is None:
                raise ValueError(f"{path}: no table right below {marker.group(0)}")
            names = [m.group(1) for m in re.finditer(r"^\|\s*`(\w+)`", rows.group(1), re.M)]
            actual = list(inspect.signature(resolve(marker.group(1))).parameters)
            found.append((path, marker.group(1), names, actual))
    return found


def split_output_block(text: str) -> tuple[str, str, str]:
    """(before, the printed block's body, after) around the block below OUTPUT_MARK."""
    index = text.index(OUTPUT_MARK)
    fence = re.compile(r"\n```[^\n]*\n(.*?)\n```", re.S).match(text, index + len(OUTPUT_MARK))
    if fence is None:
        raise ValueError(f"no fenced block right below {OUTPUT_MARK}")
    return text[:fence.start(1)], fence.group(1), text[fence.end(1):]


def documented_command(text: str) -> list[str]:
    """The arguments of the ``losszoo`` command in the last bash block above OUTPUT_MARK."""
    blocks = re.findall(r"```bash\n(.*?)\n```", text[:text.index(OUTPUT_MARK)], re.S)
    if not blocks:
        raise ValueError(f"no bash block above {OUTPUT_MARK}")
    words = shlex.split(blocks[-1].replace("\\\n", " "), comments=True)
    return words[words.index("losszoo") + 1:]


def run_losszoo(argv: list[str]) -> str:
    """What ``losszoo argv`` prints to a 100-column terminal (stderr and stdout, no colours)."""
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": TERMINAL_COLUMNS, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "losszoo", *argv], capture_output=False, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    output = ANSI.sub("", done.stdout).rstrip()
    if done.returncode != 0:
        raise RuntimeError(f"losszoo {' '.join(argv)} failed (exit {done.returncode}):\n{output}")
    return "\n".join(line.rstrip() for line in output.splitlines())


def refresh_output(page: Path = QUICKSTART, extra: list[str] = ()) -> tuple[list[str], str]:
    """Run the page's documented command (with ``extra`` arguments appended, e.g. to check this
    on a tiny run) and write what it printed into the block below OUTPUT_MARK."""
    text = page.read_text()
    argv = documented_command(text)
    output = run_losszoo([*argv, "--no-progress", *extra])
    before, _, after = split_output_block(text)
    page.write_text(before + output + after)
    return argv, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the signature blocks")
    parser.add_argument("--signatures", action="store_true", help="only rewrite the signature blocks")
    args = parser.parse_args()
    if args.check:
        stale = stale_signatures()
        for path, target in stale:
            print(f"stale: {path.relative_to(ROOT)}: {target}")
        return 1 if stale else 0
    for path in refresh_signatures():
        print(f"rewrote signatures in {path.relative_to(ROOT)}")
    if not args.signatures:
        argv, _ = refresh_output()
        print(f"rewrote the printed block of {QUICKSTART.relative_to(ROOT)} (losszoo {' '.join(argv)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
