"""Files written whole or not at all: what a reader (another process, a later run)
finds is the old file or the new one, never a part."""

import os
import tempfile


def write_atomically(path: str, data: bytes | str) -> None:
    """Writes ``data`` (str as UTF-8) to a temporary file beside ``path``, syncs it and
    renames it to ``path``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp_path = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o644)  # mkstemp makes it private to the owner.
        os.replace(tmp_path, path)
    except BaseException:
        os.remove(tmp_path)
        raise
