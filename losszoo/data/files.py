"""Finding a dataset's folder under a user-given root, and clear errors when it is absent."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

DATA_ROOT_ENV = "LOSSZOO_DATA"


def default_data_root() -> Path:
    """Where datasets are looked for when ``root`` is None: ``$LOSSZOO_DATA`` or ``~/.cache/losszoo/data``."""
    return Path(os.environ.get(DATA_ROOT_ENV) or Path.home() / ".cache" / "losszoo" / "data").expanduser()


def find_dataset_dir(
    root: str | os.PathLike | None,
    required: Sequence[str],
    *,
    dataset: str,
    folder_names: Sequence[str] = (),
    source: str = "",
) -> Path:
    """The folder holding all ``required`` entries: ``root`` itself or ``root/<folder_name>``.

    ``required`` are relative paths; a trailing ``/`` asks for a directory. Raises
    ``FileNotFoundError`` naming the places searched, what is missing and where to get it.
    """
    base = default_data_root() if root is None else Path(root).expanduser()
    candidates = [base, *(base / name for name in folder_names)]
    best: tuple[Path, list[str]] | None = None
    for candidate in candidates:
        missing = [entry for entry in required if not _exists(candidate / entry, entry.endswith("/"))]
        if not missing:
            return candidate
        if candidate.is_dir() and (best is None or len(missing) < len(best[1])):
            best = candidate, missing
    expected = ", ".join(required)
    where = f"{base}" + (
        f" or in a sub-folder {', '.join(n + '/' for n in folder_names)}" if folder_names else ""
    )
    if best is None:
        problem = (
            f"{dataset} not found: {base} does not exist"
            if not base.exists()
            else f"{dataset} not found in {base}"
        )
    else:
        problem = f"{dataset} is incomplete in {best[0]}: missing {', '.join(best[1])}"
    hint = f" Get it from {source} and extract it there." if source else ""
    raise FileNotFoundError(f"{problem}. Expected {expected} in {where}.{hint}")


def check_files_exist(paths: Iterable[Path], *, dataset: str, folder: Path, source: str = "") -> None:
    """Raise ``FileNotFoundError`` if files listed by a dataset's annotations are absent (partial copy)."""
    missing = [path for path in paths if not path.is_file()]
    if missing:
        shown = ", ".join(str(path) for path in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        hint = f" Get the full dataset from {source}." if source else ""
        raise FileNotFoundError(
            f"{dataset} in {folder} is incomplete: {len(missing)} image(s) listed in its annotations "
            f"are missing: {shown}{more}.{hint}"
        )


def _exists(path: Path, directory: bool) -> bool:
    return path.is_dir() if directory else path.exists()
