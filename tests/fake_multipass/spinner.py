"""The client's AnimatedSpinner (animated_spinner.cpp), drawn on stdout even without a TTY."""

from __future__ import annotations

import time
from typing import TextIO

CLEAR_LINE = "\x1b[2K\x1b[0A\x1b[0E"
FRAMES = "|/-\\"
PERIOD = 0.1


class Spinner:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.running = False
        self.frame = 0

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def start(self, message: str) -> None:
        """Stop any current message, then clear_line + message + two spaces + first frame."""
        self.stop()
        self.running = True
        self.frame = 0
        self._write(f"{CLEAR_LINE}{message}  ")
        self._tick()

    def _tick(self) -> None:
        self.frame = (self.frame + 1) % len(FRAMES)
        self._write("\b" + FRAMES[self.frame])

    def sleep(self, seconds: float) -> None:
        """Sleep, drawing a frame every 100 ms while a message is shown."""
        end = time.monotonic() + max(0.0, seconds)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(PERIOD, left))
            if self.running and time.monotonic() < end:
                self._tick()

    def stop(self) -> None:
        if self.running:
            self._write("\b ")
            self.running = False
            self._write(CLEAR_LINE)
