"""Structured logs (structlog): JSON lines with request and correlation ids bound per context.

The project's own log calls go through structlog's native path (a level-filtering bound logger
writing orjson bytes straight to stderr): about 8 µs a line, against about 30 µs through the
standard library's handlers (the access log has a faster path still: api/observability.py).
Libraries that log through the standard library (uvicorn, aiokafka, faust, elastic_transport)
are rendered the same way by a handler on the root logger. Name every logger
(``structlog.get_logger(__name__)``): the native path does not guess the caller's module.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, BinaryIO, TextIO

import orjson
import structlog

# Libraries whose INFO lines are per request or per message: at INFO they would double the
# log volume of a busy process (elastic_transport writes a line for every Elasticsearch call).
CHATTY_LIBRARIES = {
    "elastic_transport": logging.WARNING,
    # Faust's timers note each late wake-up (a busy core) at INFO, several times a second.
    "mode.timers": logging.WARNING,
}


class _NamedBytesLogger(structlog.BytesLogger):
    """structlog's bytes logger with the name it was asked for, for ``add_logger_name``."""

    def __init__(self, name: str | None, file: BinaryIO):
        super().__init__(file)
        self.name = name


class _NamedPrintLogger(structlog.PrintLogger):
    def __init__(self, name: str | None, file: TextIO):
        super().__init__(file)
        self.name = name


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Route structlog and the standard library through one format, at ``level``."""
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    native_renderer: structlog.types.Processor
    if json:
        native_renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        stream = sys.stderr.buffer

        def factory(*args: Any) -> Any:
            return _NamedBytesLogger(args[0] if args else None, stream)

    else:
        native_renderer = structlog.dev.ConsoleRenderer()
        text_stream = sys.stderr

        def factory(*args: Any) -> Any:
            return _NamedPrintLogger(args[0] if args else None, text_stream)

    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, native_renderer],
        logger_factory=factory,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=True,
    )
    foreign_renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                foreign_renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    for name, floor in CHATTY_LIBRARIES.items():
        logging.getLogger(name).setLevel(max(floor, numeric_level))
