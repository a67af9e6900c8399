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

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    start: float  # incident seconds from the drill's start
    end: float
    label: str = ""


class DrillClock:
    def __init__(self, speed: float, windows: list[Window] | tuple[Window, ...] = (), realtime: bool = True):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
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
