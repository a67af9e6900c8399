"""The drill's two clocks: incident time, compressed by the speed, and real time, in which
BGP's timers run whatever the speed.

A drill compresses its timeline: at speed 60 an incident hour passes in a lab minute. BGP
does not compress: an MRAI of 30 s lasts 30 lab seconds, which is 30 incident minutes at
speed 60. Real-time windows are incident clock ranges played at speed 1, so that what BGP
does in them (path hunting after the first withdrawals, convergence after a restore) is
what it would do on the day. Outside them the drill runs at its speed.

``DrillClock`` maps lab seconds since the drill's start to incident seconds and back,
piecewise linearly: slope ``speed`` outside the windows, 1 inside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_clock(text: str) -> float:
    """'17:48' or '17:48:30' -> seconds since midnight."""
    m = CLOCK.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a clock time (HH:MM or HH:MM:SS, UTC)")
    h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"{text!r} is not a time of day")
    return h * 3600 + mi * 60 + s


def fmt_clock(seconds: float) -> str:
    s = int(round(seconds)) % 86400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass(frozen=True)
class Window:
    start: float  # incident seconds from the drill's start
    end: float
    label: str = ""


class DrillClock:
    def __init__(self, speed: float, windows: list[Window] | tuple[Window, ...] = (), realtime: bool = True,
                 start: str = "00:00"):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.start = start  # the incident's clock time at the drill's start (UTC)
        self._start_s = parse_clock(start)
        # realtime=False compresses the windows too (every incident second at the speed);
        # the record says so, and no figure is then said to be on BGP's own time.
        self.windows = tuple(sorted(windows, key=lambda w: w.start)) if realtime else ()
        # Breakpoints: (incident offset, lab offset) at each window's start and end.
        self._points: list[tuple[float, float, float]] = []  # (incident, lab, slope after)
        inc = lab = 0.0
        for w in self.windows:
            lab += (w.start - inc) / speed
            self._points.append((w.start, lab, 1.0))
            lab += w.end - w.start
            self._points.append((w.end, lab, speed))
            inc = w.end

    def _segment(self, value: float, axis: int) -> tuple[float, float, float]:
        """The breakpoint (incident, lab, slope after it) last passed at ``value`` on ``axis``
        (0: incident seconds, 1: lab seconds); the drill's start before the first window."""
        last = (0.0, 0.0, self.speed)
        for point in self._points:
            if value < point[axis]:
                break
            last = point
        return last

    def incident(self, lab_elapsed: float) -> float:
        """Incident seconds from the start after ``lab_elapsed`` lab seconds."""
        inc, lab, slope = self._segment(lab_elapsed, 1)
        return inc + (lab_elapsed - lab) * slope

    def lab(self, incident_offset: float) -> float:
        """Lab seconds from the start until incident offset ``incident_offset``."""
        inc, lab, slope = self._segment(incident_offset, 0)
        return lab + (incident_offset - inc) / slope

    def window_at(self, incident_offset: float) -> Window | None:
        return next((w for w in self.windows if w.start <= incident_offset < w.end), None)

    def speed_at(self, incident_offset: float) -> float:
        return 1.0 if self.window_at(incident_offset) else self.speed

    def text(self, incident_offset: float, seconds: bool = True) -> str:
        """The incident's clock time (UTC) ``incident_offset`` seconds after the drill's start:
        '17:56:11', or '17:56' without seconds. The one place clock text is made."""
        text = fmt_clock(self._start_s + incident_offset)
        return text if seconds else text[:5]

    def text_at(self, lab_elapsed: float, seconds: bool = True) -> str:
        """The incident's clock time after ``lab_elapsed`` lab seconds since the drill's start."""
        return self.text(self.incident(lab_elapsed), seconds)
