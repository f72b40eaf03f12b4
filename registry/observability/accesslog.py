"""The access log line of each request, written as the configured logging would write it.

A line through the ``logging`` module costs a ``LogRecord``, the search of the logger tree for
handlers, the handler's lock and its formatter: about as much as the rest of a small request's
observation. When the ``registry.access`` logger ends in handlers the registry knows (plain
stream handlers with the text formatter ``logging.Formatter`` or the registry's JSON one, no
filters: what ``log.formatter`` configures), ``AccessLog`` formats the line itself and writes it
to their streams, byte for byte what ``logging`` would have written. Any other setup (an
operator's own handlers, a test's capture) gets a ``LogRecord`` as before; the loggers and
handlers are checked on every line, so a change to the logging setup takes effect at once.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from ..logs import JSONFormatter

access_log = logging.getLogger("registry.access")

_PLAIN = re.compile(r'[^\s"\\=]+')
_FORMAT_KEY = re.compile(r"%\((\w+)\)")
_TEXT_KEYS = frozenset({"asctime", "levelname", "name", "message"})
"""What a text format may name for the line to be made without a record."""
_LEVEL = logging.INFO
_LEVEL_NAME = logging.getLevelName(_LEVEL)


class AccessLine:
    """An access log message, written out only if a text formatter asks for it (the JSON one
    writes the fields): the common log's order first, then the rest as ``key=value``."""

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, object]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        fields = self.fields
        # The path and account are the client's words: escaped, so no line can be forged.
        path = _word(fields["path"])
        path = path[1:-1] if path.startswith('"') else path
        head = (
            f'{fields["client"] or "-"} {_word(fields["account"] or "-")} "{fields["method"]} {path}" '
            f"{fields['status']} {fields['bytes_in']} {fields['bytes_out']} {fields['duration']:.6f}s"
        )
        return (
            f"{head} route={_word(fields['route'])} repository={_word(fields['repository'])} "
            f"reference={_word(fields['reference'])} request_id={_text(fields['request_id'])} "
            f"user_agent={_word(fields['user_agent'])}"
        )


class _TextFormat:
    """A plain text formatter's format, filled in without a record; the date and time part of
    ``asctime`` made once per second."""

    __slots__ = ("fmt", "formatter", "second", "stamp", "uses_time")

    def __init__(self, formatter: logging.Formatter, fmt: str) -> None:
        self.formatter = formatter
        self.fmt = fmt
        self.uses_time = formatter.usesTime()
        self.second = -1
        self.stamp = ""

    def line(self, name: str, message: str, created: float) -> str:
        values = {"asctime": "", "levelname": _LEVEL_NAME, "name": name, "message": message}
        if self.uses_time:
            values["asctime"] = self._asctime(created)
        return self.fmt % values

    def _asctime(self, created: float) -> str:
        """What ``Formatter.formatTime`` makes of ``created`` with no ``datefmt``."""
        formatter, second = self.formatter, int(created)
        if second != self.second:
            self.stamp = time.strftime(formatter.default_time_format, formatter.converter(created))
            self.second = second
        msecs = int((created - second) * 1000) + 0.0  # as LogRecord computes it
        msec_format = formatter.default_msec_format
        return msec_format % (self.stamp, msecs) if msec_format else self.stamp


Target = tuple["logging.StreamHandler[Any]", _TextFormat | None]
"""A handler a line is written to directly, with its text format (None: the JSON formatter)."""


class _Direct:
    """Where lines went last, and the state of the loggers and handlers that decided it."""

    __slots__ = ("state", "targets")

    def __init__(self, state: list[object], targets: list[Target]) -> None:
        self.state = state
        self.targets = targets


class AccessLog:
    def __init__(self, logger: logging.Logger = access_log) -> None:
        self.logger = logger
        self._direct: _Direct | None = None

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(_LEVEL)

    def write(self, fields: dict[str, object], summary: str) -> None:
        """One request's line: ``fields`` for the JSON formatter, the text line made from them."""
        logger = self.logger
        if not logger.isEnabledFor(_LEVEL):
            return
        state = self._state()
        direct = self._direct
        if direct is None or direct.state != state:
            direct = self._direct = _Direct(state, _targets(logger))
        if not direct.targets:
            # makeRecord and handle, as Logger.info does, without its search of the call stack
            # for a file and line no formatter here prints.
            record = logger.makeRecord(
                logger.name, _LEVEL, "", 0, AccessLine(fields), (), None,
                extra={"data": fields, "summary": summary},
            )  # fmt: skip
            logger.handle(record)
            return
        created = time.time()
        text: str | None = None
        for handler, text_format in direct.targets:
            if text_format is None:
                assert isinstance(handler.formatter, JSONFormatter)
                line = handler.formatter.line(logger.name, _LEVEL_NAME, created, summary, fields)
            else:
                text = text or str(AccessLine(fields))
                line = text_format.line(logger.name, text, created)
            with handler.lock:  # type: ignore[union-attr] # made with the handler, never None
                try:
                    stream = handler.stream
                    stream.write(line + handler.terminator)
                    stream.flush()  # what handler.flush does, without taking the lock again
                except Exception:
                    handler.handleError(logger.makeRecord(logger.name, _LEVEL, "", 0, line, (), None))

    def _state(self) -> list[object]:
        """What decides where a line goes: each logger up the tree (while lines propagate) with
        its handlers and filters, each handler with its level, formatter and filters."""
        state: list[object] = []
        logger: logging.Logger | None = self.logger
        while logger is not None:
            state.append(logger)
            state.extend(logger.filters)
            for handler in logger.handlers:
                state += (handler, handler.level, handler.formatter, *handler.filters)
            if not logger.propagate:
                break
            logger = logger.parent
        return state


def _targets(logger: logging.Logger) -> list[Target]:
    """The handlers a line reaches, if each can be written to directly; else none."""
    found: list[Target] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return []
        for handler in current.handlers:
            if handler.level > _LEVEL:
                continue
            if type(handler) is not logging.StreamHandler or handler.filters:
                return []
            formatter = handler.formatter
            if type(formatter) is JSONFormatter:
                found.append((handler, None))
            elif type(formatter) is logging.Formatter and (fmt := _plain_format(formatter)) is not None:
                found.append((handler, _TextFormat(formatter, fmt)))
            else:
                return []
        if not current.propagate:
            break
        current = current.parent
    return found


def _plain_format(formatter: logging.Formatter) -> str | None:
    """The %-style format of ``formatter`` if it names only what a line is made of and keeps the
    default date format; else None."""
    style = formatter._style
    fmt = style._fmt
    if (
        type(style) is not logging.PercentStyle
        or not isinstance(fmt, str)
        or getattr(style, "_defaults", None)
        or formatter.datefmt is not None
        or not set(_FORMAT_KEY.findall(fmt)) <= _TEXT_KEYS
        or "%" in _FORMAT_KEY.sub("", fmt).replace("%%", "")
    ):
        return None
    return fmt


@functools.lru_cache(maxsize=4096)
def _word(value: object) -> str:
    """``_text`` of the values lines repeat (routes, names, paths, clients, accounts, agents)."""
    return _text(value)


def _text(value: object) -> str:
    """A value of a text log line: quoted (JSON string syntax) when empty or not one word."""
    text = str(value)
    return text if _PLAIN.fullmatch(text) and text.isprintable() else json.dumps(text)
