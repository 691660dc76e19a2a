"""Whether the worker may take work now: quiet hours, and stepping aside for games (issue 19).

`Availability.hold_reason()` answers None (go on) or why the worker holds, in words for its log
and the queue page ("quiet hours until 07:00", "GPU busy: steam is running"). The clock and the
process probes are arguments, so tests run a night in microseconds; the real probes are
worker/gpu_processes.py's. What the worker does while a hold lasts is worker/runner.py's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from datetime import datetime, time

from . import gpu_processes

QUIET_HOURS_PATTERN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def clock_time(hours: str, minutes: str) -> time:
    try:
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"{hours}:{minutes} is not a time of day (00:00 to 23:59)") from None


@dataclasses.dataclass(frozen=True)
class QuietHours:
    """A daily window of local time, [start, end); it crosses midnight when end < start."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """"HH:MM-HH:MM", e.g. "23:00-07:00"; ValueError says what is wrong."""
        match = QUIET_HOURS_PATTERN.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not HH:MM-HH:MM, e.g. 23:00-07:00")
        start = clock_time(*match.group(1, 2))
        end = clock_time(*match.group(3, 4))
        if start == end:
            raise ValueError(f"{text!r} starts and ends at the same time")
        return cls(start, end)

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end  # across midnight

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_process_names(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """"steam,EldenRing.exe" as ("steam", "eldenring.exe"): lower-cased, blanks dropped."""
    if text is None:
        return ()
    parts = text.split(",") if isinstance(text, str) else text
    return tuple(dict.fromkeys(part.strip().lower() for part in parts if part.strip()))


class Availability:
    def __init__(self, quiet_hours: QuietHours | None = None,
                 yield_to_names: Iterable[str] = (), is_yield_to_gpu: bool = False, *,
                 now: Callable[[], datetime] = datetime.now,
                 running_names: Callable[[], set[str]] = gpu_processes.running_process_names,
                 other_gpu_processes: Callable[[], list] = gpu_processes.other_gpu_processes):
        """now: local time; running_names: lower-cased process names; other_gpu_processes:
        GpuProcesses using the GPU besides this worker."""
        self.quiet_hours = quiet_hours
        self.yield_to_names = parse_process_names(yield_to_names)
        self.is_yield_to_gpu = is_yield_to_gpu
        self.now = now
        self.running_names = running_names
        self.other_gpu_processes = other_gpu_processes

    @property
    def is_always_available(self) -> bool:
        return self.quiet_hours is None and not self.yield_to_names and not self.is_yield_to_gpu

    def hold_reason(self) -> str | None:
        """None when the worker may claim now, else why it holds."""
        if self.quiet_hours is not None and self.quiet_hours.contains(self.now().time()):
            return f"quiet hours until {self.quiet_hours.end:%H:%M}"
        if self.yield_to_names:
            running = self.running_names()
            for name in self.yield_to_names:
                if name in running:
                    return f"GPU busy: {name} is running"
        if self.is_yield_to_gpu:
            others = self.other_gpu_processes()
            if others:
                names = ", ".join(sorted({process.name for process in others}))
                return f"GPU busy: {names} using the GPU"
        return None

    def __str__(self) -> str:
        parts = []
        if self.quiet_hours is not None:
            parts.append(f"quiet hours {self.quiet_hours}")
        if self.yield_to_names:
            parts.append("yields to " + ",".join(self.yield_to_names))
        if self.is_yield_to_gpu:
            parts.append("yields to other GPU processes")
        return "; ".join(parts) or "always available"
