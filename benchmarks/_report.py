"""Write one benchmark's section of BENCHMARKS.md without touching the others.

Each script owns the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; a missing
section is appended. Every section should say the machine, the command and the date, which
:func:`machine_line` and :func:`header` help with.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
_PREAMBLE = """# Benchmarks

Every number here comes from a script in `benchmarks/` that anyone can rerun; each section names its
machine, command and date. Speed is compared as ratios measured within one run.
"""


def machine_line() -> str:
    """One line describing this machine: CPU model, cores, RAM, Python, torch, GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores{mem}", f"Python {platform.python_version()}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        if torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    except ImportError:
        pass
    return "; ".join(parts)


def header(title: str, command: str | None = None) -> str:
    """Markdown heading plus machine, command and date lines."""
    cmd = command or "python " + " ".join(shlex.quote(a) for a in sys.argv)
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"## {title}\n\n- Machine: {machine_line()}\n- Command: `{cmd}`\n- Date: {date}\n"


def update_section(name: str, markdown: str, path: str | os.PathLike | None = None) -> Path:
    """Replace (or append) the section ``name`` of BENCHMARKS.md with ``markdown``."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"bad section name {name!r}")
    path = Path(path) if path else BENCHMARKS
    text = path.read_text() if path.is_file() else _PREAMBLE
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
