"""Learning the shape of the failures: where the next bad area starts and how long it is.

A dying head leaves bands that repeat with a period (one per track group or zone), their
lengths and periods changing slowly across the disk. :class:`BandPredictor` is told every bad
area the schedule delimits exactly (first and last bad sector known) and extrapolates the next
one linearly from the last ones: the start from the periods between starts, the length from
the lengths. A prediction comes with a window, twice the worst error of the recent predictions
(at least :data:`MIN_WINDOW` bytes), inside which the schedule looks for the edge sector by
sector, so a well-predicted edge costs one failed read. Nothing here reads: it is a pure model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_WINDOW = 8 * 512  # bytes: the window of an exact pattern
MAX_WINDOW = 1 << 18  # beyond this a guess is not worth a search sector by sector
HISTORY = 8  # bands kept


@dataclass(frozen=True)
class Prediction:
    """An edge expected at ``at``, within ``window`` bytes either side."""

    at: int
    window: int


@dataclass
class BandPredictor:
    """Bad areas seen so far, in disk order, and how well they were predicted."""

    sector: int = 512
    bands: list[tuple[int, int]] = field(default_factory=list)
    start_errors: list[int] = field(default_factory=list)
    length_errors: list[int] = field(default_factory=list)

    def learn(self, start: int, end: int) -> None:
        """A bad area ``[start, end)`` was delimited exactly (forwards: after the last one)."""
        if self.bands and start <= self.bands[-1][0]:
            return  # out of order (an area met again): keep the forward history only
        guess = self.rough_start()
        if guess is not None and abs(guess[0] - start) <= guess[1] // 2:
            self.start_errors = [*self.start_errors[-HISTORY:], abs(guess[0] - start)]
        guess_end = self._linear_end(start)
        if guess_end is not None:
            self.length_errors = [*self.length_errors[-HISTORY:], abs(guess_end - end)]
        self.bands = [*self.bands[-HISTORY:], (start, end)]

    def rough_start(self) -> tuple[int, int] | None:
        """The next start after the last area and the period, from three areas on, when the
        period changes by less than half (extrapolated linearly)."""
        b = self.bands
        if len(b) < 3:
            return None
        p1 = b[-1][0] - b[-2][0]
        p0 = b[-2][0] - b[-3][0]
        if p1 <= 0 or abs(p1 - p0) * 2 > p1:
            return None  # no steady period
        step = p1 + (p1 - p0)
        return b[-1][0] + step, step

    def _linear_end(self, start: int) -> int | None:
        b = self.bands
        if len(b) < 2:
            return None
        l1 = b[-1][1] - b[-1][0]
        l0 = b[-2][1] - b[-2][0]
        if abs(l1 - l0) * 2 > l1:
            return None  # lengths that vary: no guess
        return start + l1 + (l1 - l0)

    def rough_end(self, start: int) -> tuple[int, int] | None:
        """A first guess of the end of the area starting at ``start`` and how far off it may
        be: the last length extrapolated, or the last length (a quarter off) after one area."""
        end = self._linear_end(start)
        if end is not None:
            off = self._worst(self.length_errors)
            return end, (end - start) // 8 if off is None else 2 * off + MIN_WINDOW
        if self.bands:
            length = self.bands[-1][1] - self.bands[-1][0]
            return start + length, length // 4
        return None

    @staticmethod
    def _worst(errors: list[int]) -> int | None:
        return max(errors[-3:]) if errors else None

    def _window(self, errors: list[int]) -> int | None:
        """Twice the worst recent error (none known: no window)."""
        worst = self._worst(errors)
        if worst is None:
            return None
        w = 2 * worst + MIN_WINDOW
        return -(-w // self.sector) * self.sector

    def next_start(self, pos: int) -> Prediction | None:
        """Where the next bad area at or after ``pos`` should start, when the guesses of the
        past starts were close enough to look for the edge sector by sector."""
        guess = self.rough_start()
        window = self._window(self.start_errors)
        if guess is None or window is None:
            return None
        at, step = guess
        while at + window <= pos:  # a band may have been missed (good there): the next one
            at += step
        if window > MAX_WINDOW or window * 4 > step:
            return None
        return Prediction(at - at % self.sector, window)

    def end_after(self, start: int) -> Prediction | None:
        """Where the bad area starting at ``start`` should end, when the guesses of the past
        lengths were close enough to look for the edge sector by sector."""
        end = self._linear_end(start)
        window = self._window(self.length_errors)
        if end is None or window is None or window > MAX_WINDOW:
            return None
        return Prediction(end - end % self.sector, window)

    def clear_ahead(self, pos: int) -> int | None:
        """How far reads may go from ``pos`` without expecting a bad area: up to an eighth of
        a period before the next rough start; 0 when areas were seen without a period; None
        when none was seen."""
        if not self.bands:
            return None
        guess = self.rough_start()
        if guess is None:
            return 0
        at, step = guess
        while at <= pos:
            at += step
        return max(0, at - step // 8 - pos)
