"""Docs that cannot go stale: every ``losszoo ...`` command of README.md and docs/*.md parses,
and runs as a tiny run (tests/docs_commands.py says how commands are collected and marked);
the API signatures the docs show are the code's (benchmarks/make_docs.py writes them)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time

import pytest

from docs_commands import DOCUMENTS, ROOT, TINY, TINY_LOSSES, TINY_TUNE, commands, missing_path
from losszoo.cli.main import build_parser, main

ALL = [command for document in DOCUMENTS for command in commands(document)]


def _make_docs():
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "benchmarks" / "make_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_have_commands():
    places = {command.document.name for command in ALL}
    assert {"README.md", "quickstart.md", "adding-a-loss.md", "protocol.md"} <= places
    assert sum(command.parse_only is None for command in ALL) >= 10  # most blocks really run


@pytest.mark.parametrize("command", ALL, ids=[command.where for command in ALL])
def test_every_documented_command_parses(command, capsys):
    parser = build_parser()
    try:
        parser.parse_args(list(command.argv))
    except SystemExit as exc:
        pytest.fail(f"{command.where}: 'losszoo {' '.join(command.argv)}' no longer parses: "
                    f"{capsys.readouterr().err.strip().splitlines()[-1]} (exit {exc.code})")


def test_every_documented_command_runs_as_a_tiny_run(tmp_path, monkeypatch, loss_registry):
    """Every distinct block command, in the documents' order, in one scratch folder, with TINY."""
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    modules = set(sys.modules)
    failures, seen, timings = [], set(), []
    for number, command in enumerate(ALL):
        if command.parse_only is not None or not command.argv or "--help" in command.argv \
                or command.argv in seen or missing_path(command.argv, tmp_path) is not None:
            continue
        seen.add(command.argv)
        argv = [*command.argv, *TINY.get(command.argv[0], [])]
        if "--tune" in command.argv:
            argv += TINY_TUNE
        if command.argv[0] in ("compare", "tune") and "--losses" not in command.argv:
            argv += TINY_LOSSES
        if command.argv[0] in ("train", "compare", "tune") and not {"--output", "-o"} & set(argv):
            argv += ["--output", f"out/{number}"]
        argv = [f"abs{value}" if previous in ("--output", "-o") and value.startswith("/") else value
                for previous, value in zip(["", *argv], argv)]  # /tmp/docs-demo: into the scratch
        started = time.perf_counter()
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        if code != 0:
            failures.append(f"{command.where}: losszoo {' '.join(argv)} -> exit {code}")
        timings.append((time.perf_counter() - started, command.where))
    for name in set(sys.modules) - modules:  # a --loss-module file's module
        if name.startswith("losszoo_user."):
            del sys.modules[name]
    print("slowest:", sorted(timings, reverse=True)[:5])
    assert not failures, "\n".join(failures)
    assert len(seen) >= 10


def test_signatures_in_the_docs_are_the_code_s():
    make_docs = _make_docs()
    stale = [f"{path.relative_to(ROOT)}: {target}" for path, target in make_docs.stale_signatures()]
    assert not stale, ("signatures differ from the code; run python benchmarks/make_docs.py "
                       f"--signatures: {', '.join(stale)}")
    assert make_docs.signature_targets()  # the check has something to check


def test_argument_tables_name_every_argument():
    make_docs = _make_docs()
    for path, target, documented, actual in make_docs.argument_tables():
        assert documented == actual, f"{path.relative_to(ROOT)}: the table of {target} lists {documented}, the code takes {actual}"


def test_make_docs_rewrites_the_quickstart_block_from_a_run(tmp_path, monkeypatch):
    """The script on a copy of the quickstart, its command made tiny: the printed block is what
    the command printed, and nothing else in the file changes."""
    make_docs = _make_docs()
    page = tmp_path / "quickstart.md"
    original = (ROOT / "docs" / "quickstart.md").read_text()
    page.write_text(original)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    command, output = make_docs.refresh_output(page, extra=["--max-classes", "4", "--batches-per-epoch", "1",
                                                            "--output", str(tmp_path / "demo")])
    assert command[:2] == ["compare", "--untuned"]
    text = page.read_text()
    assert output in text and "untrained" in output and "results:" in output
    before, after = make_docs.split_output_block(original), make_docs.split_output_block(text)
    assert before[0] == after[0] and before[2] == after[2]  # only the block changed
    assert os.path.isdir(tmp_path / "demo")
