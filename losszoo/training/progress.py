"""Progress a CPU user can live with: bars and log.csv refreshed by time, not every N batches
(a batch takes 30 ms on the embedded Omniglot and seconds on photos), and one plain line per
epoch when the output is not a terminal (a log file, a pipe, a batch job), where bars are not
drawn at all."""

from __future__ import annotations

import time

REFRESH_S = 1.0  # at most this often: redraw the bars, flush log.csv (a device sync on CUDA)


class Every:
    """Calls return True at most once per ``seconds`` (always when ``force``)."""

    def __init__(self, seconds: float = REFRESH_S) -> None:
        self.seconds = seconds
        self.last = time.perf_counter()

    def __call__(self, force: bool = False) -> bool:
        now = time.perf_counter()
        if force or now - self.last >= self.seconds:
            self.last = now
            return True
        return False


def duration(seconds: float) -> str:
    """``"2 h 05 min"``, ``"4 min 10 s"`` or ``"12 s"``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def epoch_line(loss: str, epoch: int, total: int, *, mean_loss: float, images: int,
               seconds: float, seconds_left: float) -> str:
    """One epoch's summary: ``"normsoftmax epoch 3/10: loss 1.2345, 41 img/s, 1 min 02 s;
    about 7 min 14 s left"``."""
    rate = images / max(seconds, 1e-9)
    left = f"; about {duration(seconds_left)} left" if epoch < total else ""
    return (f"{loss} epoch {epoch}/{total}: loss {mean_loss:.4f}, {rate:.0f} img/s, "
            f"{duration(seconds)}{left}")
