"""Checksums of a checkpoint step's files: `seal` writes them, `verify` checks them.

Once a step is written, `<step>/checksums.json` records the CRC32C of each of its
files (written atomically). `verify` raises `DamagedCheckpointError` naming the
first file that is missing or no longer matches, so that a step whose files were
garbled or cut later is caught before it is restored. Steps saved before CRC32C
was used hold zlib CRC32s and are still checked.
"""

import json
import mmap
import os
import zlib

import google_crc32c
import numpy as np

from s2s_jax.runtime.atomic_files import write_atomically

# Per step: {"crc32c": {path relative to the step: CRC32C of the file, hex}}.
CHECKSUMS = "checksums.json"


class DamagedCheckpointError(Exception):
    """A checkpoint's files do not match their checksums."""


def _crc(path: str, algorithm: str) -> int:
    """The file's checksum, read through a memory map: no copies (reading it into
    bytes objects took longer than the checksum; benchmarks/checkpoint_verify.py).
    CRC32C is SSE4.2/ARMv8 hardware in google-crc32c, 3x zlib's CRC32 here; "crc32"
    checks the steps saved before CRC32C was used."""
    with open(path, "rb") as f:
        if not os.fstat(f.fileno()).st_size:
            return 0
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            if algorithm == "crc32":
                return zlib.crc32(mapped)
            # google_crc32c takes only buffers that need no release, as numpy's are.
            return google_crc32c.value(np.frombuffer(mapped, np.uint8))


def _file_checksums(step_dir: str, algorithm: str = "crc32c") -> dict[str, str]:
    """The checksum (hex) of every file under ``step_dir`` but CHECKSUMS, by relative path."""
    checksums = {}
    for root, _, names in os.walk(step_dir):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, step_dir)
            if relative != CHECKSUMS:
                checksums[relative] = f"{_crc(path, algorithm):08x}"
    return dict(sorted(checksums.items()))


def seal(step_dir: str) -> None:
    """Writes ``step_dir``'s CHECKSUMS (atomically: complete or absent)."""
    write_atomically(
        os.path.join(step_dir, CHECKSUMS),
        json.dumps({"crc32c": _file_checksums(step_dir)}, indent=0),
    )


def verify(step_dir: str) -> None:
    """Raises DamagedCheckpointError naming the first file of ``step_dir`` that is
    missing or differs from its checksum; a step without CHECKSUMS (saved before
    checksums existed, or killed before they were written) passes unchecked."""
    path = os.path.join(step_dir, CHECKSUMS)
    if not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError) as error:
        raise DamagedCheckpointError(f"{path}: unreadable ({error})") from None
    # Steps saved before CRC32C hold a flat {path: CRC32} mapping.
    expected = saved.get("crc32c", saved) if isinstance(saved, dict) else None
    algorithm = "crc32c" if expected is not saved else "crc32"
    if not isinstance(expected, dict):
        raise DamagedCheckpointError(f"{path}: not a mapping of files to checksums")
    actual = _file_checksums(step_dir, algorithm)
    for relative, crc in expected.items():
        if actual.get(relative) != crc:
            problem = "is missing" if relative not in actual else "does not match its checksum"
            raise DamagedCheckpointError(f"{os.path.join(step_dir, relative)} {problem}")
