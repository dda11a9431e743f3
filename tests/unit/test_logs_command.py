"""``damai logs --correlation``: the lines of one correlation id from several JSON log files,
merged in time order (cli/logs.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import orjson

from cli.logs import correlated_lines, log_files

ID = "0b5c6a44-1d2e-4f5a-9b8c-7d6e5f4a3b2c"
OTHER = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"


def write(path: Path, *lines: Mapping[str, object] | str) -> Path:
    encoded = [line.encode() if isinstance(line, str) else orjson.dumps(line) for line in lines]
    path.write_bytes(b"".join(line + b"\n" for line in encoded))
    return path


def test_lines_of_the_id_from_every_file_come_out_oldest_first(tmp_path: Path):
    answered = {"event": "http.request", "request_id": ID, "timestamp": "2026-12-01T10:00:00.300Z"}
    api = write(tmp_path / "api.log", answered)
    allocator = write(
        tmp_path / "allocator.log",
        {"event": "allocator.decided", "correlation_id": ID, "timestamp": "2026-12-01T10:00:00.100Z"},
        {"event": "allocator.decided", "correlation_id": OTHER, "timestamp": "2026-12-01T10:00:00.150Z"},
    )
    lifecycle = write(
        tmp_path / "lifecycle.log",
        {"event": "lifecycle.decision_read", "correlation_id": ID, "timestamp": "2026-12-01T10:00:00.200Z"},
    )

    found = correlated_lines([api, allocator, lifecycle], ID)

    assert [(line.source, orjson.loads(line.text)["event"]) for line in found] == [
        ("allocator.log", "allocator.decided"),
        ("lifecycle.log", "lifecycle.decision_read"),
        ("api.log", "http.request"),
    ]


def test_a_line_that_only_mentions_the_id_elsewhere_or_is_not_json_is_left_out(tmp_path: Path):
    log = write(
        tmp_path / "worker.log",
        {"event": "something", "error": f"about {ID}", "timestamp": "2026-12-01T10:00:00Z"},
        f"plain text naming {ID}",
        {"event": "projector.applied", "correlation_id": ID, "timestamp": "2026-12-01T10:00:01Z"},
    )

    assert [orjson.loads(line.text)["event"] for line in correlated_lines([log], ID)] == ["projector.applied"]


def test_a_directory_stands_for_the_log_files_under_it(tmp_path: Path):
    (tmp_path / "deep").mkdir()
    write(tmp_path / "api.log", {"request_id": ID})
    write(tmp_path / "deep" / "worker.jsonl", {"correlation_id": ID})
    write(tmp_path / "notes.txt", {"correlation_id": ID})

    assert sorted(p.name for p in log_files([tmp_path])) == ["api.log", "worker.jsonl"]
