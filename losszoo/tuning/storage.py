"""Checking an Optuna storage URL before a tune writes anything: a URL that is none, a
database driver that is not installed, an SQLite file in a folder that does not exist, or an
SQLite file that is not a (sound) database are each one error naming ``--storage`` or the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from losszoo.errors import ConfigError, CorruptFileError


def check_storage(url: str, *, flag: str = "--storage", folder_made: bool = False) -> None:
    """Raise ``ConfigError`` / ``CorruptFileError`` when ``url`` cannot hold a study
    (``folder_made``: an SQLite file's folder is created by the caller, e.g. the output folder)."""
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(f"{flag} {url!r} is not a database URL (e.g. sqlite:///study.db, "
                          "postgresql://user@host/db)") from None
    except sqlalchemy.exc.NoSuchModuleError:
        raise ConfigError(f"{flag} {url!r}: SQLAlchemy knows no database {parsed.drivername!r}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ConfigError(f"{flag} {url!r}: the {parsed.drivername} driver is not installed ({exc})") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _check_sqlite(Path(parsed.database), flag, folder_made)


def _check_sqlite(path: Path, flag: str, folder_made: bool) -> None:
    if not folder_made and not path.parent.is_dir():
        raise ConfigError(f"{flag}: the folder {path.parent} of {path} does not exist")
    if not path.exists():
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise CorruptFileError(f"{path} is not a readable study database ({exc}); "
                               "move it away to start the study over") from None
    if verdict != "ok":
        raise CorruptFileError(f"{path} is a damaged study database ({verdict}); move it away to start over")
