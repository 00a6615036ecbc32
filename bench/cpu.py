"""Where the CPU went during a measured phase: the client (this process), the citydesk server's
processes, PostgreSQL, and everything else on the machine, read from /proc (Linux only).

On a 2-core machine every benchmark is a contest for the same two cores; this says who used them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """User + system CPU seconds of one process (and its waited-for children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(int(f) for f in fields[11:15]) / TICK  # utime stime cutime cstime


def _processes() -> Iterator[tuple[int, str]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (FileNotFoundError, ProcessLookupError):
                continue
            yield int(entry.name), cmdline


def _groups() -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {"client": [os.getpid()], "server": [], "postgres": []}
    for pid, cmdline in _processes():
        if pid == os.getpid():
            continue
        if "citydesk.cli serve" in cmdline or "multiprocessing.spawn" in cmdline:
            groups["server"].append(pid)
        elif cmdline.startswith("postgres"):
            groups["postgres"].append(pid)
    return groups


def _machine() -> float:
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(p) for i, p in enumerate(parts) if i not in (3, 4))  # all but idle and iowait
    return busy / TICK


@contextmanager
def cpu_use() -> Iterator[dict[str, float]]:
    """CPU seconds per group used inside the block (processes started inside it count from zero)."""
    before_groups = _groups()
    before = {pid: _cpu(pid) for pids in before_groups.values() for pid in pids}
    machine = _machine()
    out: dict[str, float] = {}
    yield out
    after_groups = _groups()
    for name, pids in after_groups.items():
        out[name] = sum(max(_cpu(pid) - before.get(pid, 0.0), 0.0) for pid in pids)
    out["other"] = max(_machine() - machine - sum(out.values()), 0.0)


def report(use: dict[str, float], count: int, unit: str = "1,000 observations") -> str:
    per = 1000 / count
    return "CPU per " + unit + ": " + ", ".join(f"{k} {v * per * 1000:.1f} ms" for k, v in use.items())
