"""CSV exports: rows streamed as CSV whose cells a spreadsheet shows as text, never runs."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import Response
from fastapi.responses import StreamingResponse

from leadflow.api.deps import errors


class CSVResponse(Response):
    media_type = "text/csv"


def csv_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a CSV route: CSV on success, JSON ErrorBody on these error codes."""
    return {
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"},
        **errors(*codes, media_type="text/csv"),
    }


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(header: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([csv_cell(row.get(column)) for column in header])
        yield buffer.getvalue()


def csv_download(
    header: tuple[str, ...], rows: Iterable[dict[str, Any]], filename: str
) -> StreamingResponse:
    """`rows` (their `header` columns) streamed as a CSV attachment named `filename`."""
    return StreamingResponse(
        csv_lines(header, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
