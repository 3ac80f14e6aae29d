"""SHA-256 of a file's bytes, read in blocks so that a large engine or checkpoint is never held whole.

Standard library only: the weights commands and hand-model checks use it without importing torch.
"""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
