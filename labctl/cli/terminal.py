"""What reaches the terminal: one console that never lets a value drive it.

Students have root in their VMs, so pm2 names, nginx errors, cloud-init and log lines, custom
check output and engine stderr are theirs to choose; so are lab files in a shared folder and
the values a user echoes back from the command line. None of it may move the instructor's cursor,
clear the screen, write the clipboard (OSC 52), reorder a line (bidi overrides) or be read as
rich markup (`[red]`, `[link=...]`) or an emoji code (`:x:`).

So labctl prints only through `SafeConsole`:
- every string is data: markup, emoji and highlighting are off whatever a call asks for, and the
  string is passed through `visible` before rich lays it out (`render_str`, which rich uses for
  printed strings, table cells and titles alike);
- every segment of every renderable is checked again just before it is written (`render`), so a
  `Text` built from a raw value cannot slip through either; rich's own control segments (the
  live view's cursor moves) are the only escape codes that pass, plus the colour codes rich adds
  for labctl's own styles, which are `Text` styles (`styled`, `line`), never markup.

`visible` is hand-written: rich only strips five control codes (`rich.control`), and the set to
show (Unicode categories Cc, Cf, Cs, Zl, Zp) is spelled out below because computing it from
`unicodedata` at start-up would cost every command a scan of the whole code space.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any, Final

from rich.console import Console, ConsoleOptions, HighlighterType, JustifyMethod, OverflowMethod
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

# Unicode categories Cc (C0, DEL, C1), Cf (format: bidi embeddings, overrides and isolates,
# zero-width characters, invisible operators, tag characters...), Cs (lone surrogates), Zl and
# Zp (line and paragraph separators some terminals break lines at). Tab and newline are not
# here: whether they are shown depends on the field (`visible`'s `newlines`).
_UNSAFE_CLASS: Final = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\ud800-\udfff\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE: Final = re.compile(f"[{_UNSAFE_CLASS}]")
_UNSAFE_OR_NEWLINE: Final = re.compile(f"\r\n|[{_UNSAFE_CLASS}\n]")
_UNSAFE_KEEPING_NEWLINES: Final = re.compile(f"\r\n|[{_UNSAFE_CLASS}]")

# What a progress spinner or a coloured log redraws a line with (select graphic rendition, erase
# in line, cursor up/down/next/previous line/column, cursor shown or hidden): noise in a log
# line, dropped. Any other escape sequence (clear screen, OSC 52...) is shown, not dropped.
_SPINNER_NOISE: Final = re.compile(r"\x1b\[[0-9;]*[mKABEFG]|\x1b\[\?25[hl]")


def _escape_char(char: str) -> str:
    if char == "\r":
        return "\\r"
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, newlines: bool = True) -> str:
    """`text` with every control and invisible format character shown as an escape (ESC as
    `\\x1b`, a bidi override as `\\u202e`), so a terminal prints it and does nothing else.

    Tab stays; newlines stay (a CRLF becomes a newline) unless `newlines` is False, for a field
    that must stay on one line (a progress line), where they are shown as `\\n` too."""
    pattern = _UNSAFE_KEEPING_NEWLINES if newlines else _UNSAFE_OR_NEWLINE
    if not pattern.search(text):
        return text  # the common case: nothing to do

    def shown(match: re.Match[str]) -> str:
        found = match.group()
        if found in ("\r\n", "\n"):
            return "\n" if newlines else "\\n"
        return _escape_char(found)

    return pattern.sub(shown, text)


def one_line(text: str) -> str:
    """`visible`, and on one line: a newline in the value is shown as `\\n`."""
    return visible(text, newlines=False)


def _as_drawn(line: str) -> str:
    """What is left of one line's carriage-return redraws (a progress bar, a spinner): the last
    frame that draws something, with its backspaces taking back the character before them."""
    last = ""
    for frame in line.split("\r"):
        kept: list[str] = []
        for char in frame:
            if char != "\b":
                kept.append(char)
            elif kept:
                kept.pop()
        if "".join(kept).strip():
            last = "".join(kept)
    return last


def tidy_log(text: str) -> str:
    """A VM's log text as a reader wants it: per line, spinner and colour codes dropped, the
    last frame of carriage-return redraws (npm, apt, an engine's spinner) kept, backspaces
    applied; then `visible`, so whatever else the VM wrote is shown, never obeyed."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(visible(_as_drawn(_SPINNER_NOISE.sub("", ln))) for ln in lines)


def log_line(text: str) -> str:
    """The last line of a VM's log that says something, tidied and on one line (the live view)."""
    for line in reversed(tidy_log(text).split("\n")):
        if line.strip():
            return line.strip()
    return ""


# XML 1.0's Char production leaves these out besides C0 and lone surrogates, which `visible`
# already shows.
_XML_NONCHARACTERS: Final = re.compile("[\ufffe\uffff]")


def xml_text(text: str) -> str:
    """`text` fit for an XML 1.0 attribute or element (a JUnit report): nothing XML forbids (a
    parser would reject the whole file), and no control or bidi character a grader's terminal
    would obey when the report is shown. Tab and newline stay."""
    return _XML_NONCHARACTERS.sub(lambda m: _escape_char(m.group()), visible(text))


def styled(text: str, style: str) -> Text:
    """labctl's own styling of a value: a `Text` whose characters are shown, never interpreted."""
    return Text(visible(text), style=style)


def line(*parts: str | tuple[str, str] | Text) -> Text:
    """One message from parts, like `Text.assemble`: plain strings are values (shown as they
    are), a (text, style) pair is styled, a `Text` is kept as built."""
    out = Text()
    for part in parts:
        if isinstance(part, Text):
            out.append_text(part)
        elif isinstance(part, tuple):
            out.append(visible(part[0]), style=part[1])
        else:
            out.append(visible(part))
    return out


class SafeConsole(Console):
    """A rich Console for labctl's output: strings are data (no markup, emoji or highlighting,
    control characters shown), and nothing it writes carries an escape code labctl did not make.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(markup=False, emoji=False, highlight=False)
        super().__init__(**kwargs)

    def render_str(
        self,
        text: str,
        *,
        style: str | Style = "",
        justify: JustifyMethod | None = None,
        overflow: OverflowMethod | None = None,
        emoji: bool | None = None,
        markup: bool | None = None,
        highlight: bool | None = None,
        highlighter: HighlighterType | None = None,
    ) -> Text:
        # Whatever a call site asks for: a string is shown as it is, never interpreted.
        return super().render_str(
            visible(text),
            style=style,
            justify=justify,
            overflow=overflow,
            emoji=False,
            markup=False,
            highlight=False,
        )

    def render(self, renderable: Any, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and _UNSAFE.search(segment.text):
                yield Segment(visible(segment.text), segment.style)
            else:
                yield segment

    def raw(self, text: str) -> None:
        """Write `text` exactly as it is: only for output the user asked to get raw."""
        self.file.write(text)
        self.file.flush()


class VisibleFormatter(logging.Formatter):
    """--debug log lines: engine argv and output can carry a VM's text too."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record))


def debug_logging() -> None:
    """--debug: every log record on stderr, timestamped, with its control characters shown."""
    handler = logging.StreamHandler()
    handler.setFormatter(VisibleFormatter("%(asctime)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.DEBUG, handlers=[handler])
