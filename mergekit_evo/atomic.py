"""Write-then-rename: an output file is whole or absent, never half-written.

A search is killed at any moment (SIGKILL, a lost machine, a full disk); a reader (a person,
``mergekit-yaml best.yml``, a resumed run) must never meet half a file.  Every file the project
writes into a run directory goes through :func:`write_bytes` / :func:`write_text`: the content
goes to a temporary file in the same folder (``.NAME.XXXXXXXX``, what
:func:`is_partial` recognises and a resumed run removes), which then replaces the target in
one ``os.replace``.  Bottom layer: the report writers and the run directory share it.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

#: what tempfile.mkstemp(prefix=".NAME.") leaves: ".NAME." + 8 random characters
_PARTIAL = re.compile(r"^\..+\.[A-Za-z0-9_]{8}$")


def is_partial(name: str) -> bool:
    """Is ``name`` the temporary file of a write that did not finish?"""
    return bool(_PARTIAL.match(name))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (folders made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary output files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`write_bytes` of ``text`` as UTF-8."""
    write_bytes(path, text.encode("utf-8"))


def remove_partials(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files interrupted writes left in ``folder``; what was removed.

    Only for a folder no live process writes to (the run's owner, holding its lock)."""
    folder = Path(folder)
    gone: list[Path] = []
    if not folder.is_dir():
        return gone
    for tmp in folder.glob(".*"):
        if tmp.is_file() and is_partial(tmp.name):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone
