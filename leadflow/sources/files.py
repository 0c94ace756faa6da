"""PostHog S3 batch-export files (JSONL, plain/.gz/.zst/.br, and Parquet) as raw events in DuckDB.

PostHog names an export file `{interval_start}-{interval_end}[-n].{jsonl|parquet}`, followed by
the compression's extension when one is set (`.gz`, `.br`, `.zst`, `.lz4`, `.sz`). A JSONL file
is compressed as a whole; a Parquet file is compressed inside and is read as it is, whatever its
name adds. The `manifest.json` an export sends after its files lists them; it holds no events.
"""

from __future__ import annotations

import glob
import os
import stat
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from leadflow.errors import SourceError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
# A JSONL file's compression by its name's last extension (brotli is decompressed by leadflow,
# the others by DuckDB).
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".br": "brotli"}
# A Parquet file's name, bare or with the extension PostHog adds for the compression inside it.
PARQUET_SUFFIXES = tuple(".parquet" + codec for codec in ("", ".gz", ".br", ".zst", ".lz4", ".sz"))
# PostHog's manifest of an export's files (`manifest.json`, or with a prefix before it).
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportFile:
    """One export file, identified by its resolved path and, for changes, its size and mtime."""

    path: str
    size: int
    mtime_ns: int
    format: str  # "parquet" | "jsonl"
    compression: str  # "none" | "gzip" | "zstd"


def file_format(path: str) -> tuple[str, str] | None:
    """(format, compression) of an export file by its name, or None if it is not one. A
    Parquet file's compression is inside it: "none" to its reader, whatever the name adds."""
    return _name_format(os.path.basename(path))


def _name_format(name: str) -> tuple[str, str] | None:
    """file_format of a file's name."""
    name = name.lower()
    if name.endswith(MANIFEST):
        return None
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet", "none"
    compression = "none"
    for suffix, codec in COMPRESSIONS.items():
        if name.endswith(suffix):
            name, compression = name[: -len(suffix)], codec
            break
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl", compression
    return None


def _folder_files(folder: str, real_folder: str) -> Iterator[tuple[str, str, str | None]]:
    """(path, name, real path) of each file in a folder and its subfolders, as `os.walk` finds
    them (links to folders are not followed; unreadable folders are passed over), hidden files
    aside. `real_folder`: the folder with its links resolved; a file's real path is None when
    the file is itself a link."""
    try:
        with os.scandir(folder) as found:
            entries = list(found)
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from _folder_files(entry.path, os.path.join(real_folder, name))
        elif not name.startswith("."):
            real = None if entry.is_symlink() else os.path.join(real_folder, name)
            yield entry.path, name, real


def _real_path(path: str, real_folders: dict[str, str]) -> str:
    """`path` with every symbolic link resolved (as `os.path.realpath`), resolving each folder
    once: a folder of a year's hourly export files is one folder, not 8,760."""
    folder, name = os.path.split(path)
    real_folder = real_folders.get(folder)
    if real_folder is None:
        real_folder = real_folders[folder] = os.path.realpath(folder or ".")
    joined = os.path.join(real_folder, name)
    return os.path.realpath(joined) if os.path.islink(joined) else joined


def discover(spec: str, skipped: list[str] | None = None) -> list[ExportFile]:
    """The export files a source path names: one file, a folder (recursively) or a glob.

    `skipped` (when given) receives the paths of the other files the folder or glob holds, not
    named as export files (manifests and hidden files aside), for the run to report."""
    # A path that exists is itself, even with glob characters in its name ('exports [old]').
    candidates: Iterable[tuple[str, str, str | None]]  # (path, name, real path if known)
    if not os.path.exists(spec) and any(ch in spec for ch in "*?["):
        matches = glob.glob(spec, recursive=True)
        if not matches:
            raise SourceError(f"no files match {spec!r}")
        candidates = ((path, os.path.basename(path), None) for path in matches)
    elif os.path.isdir(spec):
        candidates = _folder_files(spec, os.path.realpath(spec))
    elif os.path.exists(spec):
        if file_format(spec) is None:
            raise SourceError(
                f"{spec}: not an export file (expected .parquet, or .jsonl/.ndjson/.json, "
                "optionally .gz, .zst or .br)"
            )
        candidates = [(spec, os.path.basename(spec), None)]
    else:
        raise SourceError(f"{spec}: no such file or folder")
    files: list[ExportFile] = []
    others: list[str] = []
    real_folders: dict[str, str] = {}
    for p, name, real in candidates:
        try:
            info = os.stat(p)
        except OSError:  # a broken link, or gone since it was listed
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        kind = _name_format(name)
        if kind is not None:
            path = real if real is not None else _real_path(p, real_folders)
            files.append(ExportFile(path, info.st_size, info.st_mtime_ns, *kind))
        elif not _unlisted(name):
            others.append(p)
    if skipped is not None:
        skipped.extend(sorted(others))
    return sorted(files, key=lambda f: f.path)


def _unlisted(name: str) -> bool:
    """A file a folder may hold that is no export file and worth no warning: a hidden file or
    an export's manifest."""
    return name.startswith(".") or name.lower().endswith(MANIFEST)


def discover_all(specs: Sequence[str], skipped: list[str] | None = None) -> list[ExportFile]:
    """The export files several source paths name (each as `discover` reads it), each once."""
    found: dict[str, ExportFile] = {}
    for spec in specs:
        for f in discover(spec, skipped):
            found[f.path] = f
    return [found[path] for path in sorted(found)]


def readable(files: Sequence[tuple[int, ExportFile]], folder: str) -> list[tuple[int, ExportFile]]:
    """`files` as DuckDB can read them: a brotli-compressed JSONL file is decompressed into
    `folder` (streamed, a megabyte at a time) and stands in for it under the same file id."""
    out: list[tuple[int, ExportFile]] = []
    for fid, f in files:
        if f.compression == "brotli":
            plain = os.path.join(folder, f"brotli-{fid}-{os.path.basename(f.path)[:-3]}")
            _unbrotli(f.path, plain)
            f = ExportFile(plain, os.path.getsize(plain), f.mtime_ns, f.format, "none")
        out.append((fid, f))
    return out


def _unbrotli(path: str, target: str) -> None:
    import brotli

    decompressor = brotli.Decompressor()
    try:
        with open(path, "rb") as source, open(target, "wb") as plain:
            while chunk := source.read(1 << 20):
                plain.write(decompressor.process(chunk))
            if not decompressor.is_finished():
                raise SourceError(f"{path}: cannot read the export file: truncated brotli data")
    except brotli.error as exc:
        raise SourceError(f"{path}: cannot read the export file: not brotli data ({exc})") from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the export file: {exc}") from exc


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _file_ids(files: Sequence[tuple[int, ExportFile]]) -> str:
    """The rows of a VALUES list of (file_id, path) that joins a reader's file names to ids."""
    return ", ".join(f"({fid}, {_quote(f.path)})" for fid, f in files) or "(NULL, NULL)"


def _file_list(paths: Iterable[str]) -> str:
    return "[" + ", ".join(_quote(p) for p in paths) + "]"


_ID_TYPES = "('VARCHAR', 'BIGINT', 'UBIGINT')"
# Microseconds since the epoch within the years 1 to 9999.
_MICROS_RANGE = "BETWEEN -62135596800000000 AND 253402300799999999"
_INTEGER_TYPES = ("BIGINT", "UBIGINT", "INTEGER", "HUGEINT")


# A JSONL line longer than this is not read as an event (it is counted malformed): PostHog's own
# limit on an event is far below it. DuckDB's buffer stays at its default size.
MAX_LINE_BYTES = 16 * 1024 * 1024


def _jsonl_sql(
    files: Sequence[tuple[int, ExportFile]], compression: str, rejects: str | None
) -> str:
    paths = _file_list(f.path for _, f in files)
    # Lines DuckDB cannot take as text (not UTF-8, too long) are skipped, not fatal; with
    # `rejects` they are kept in DuckDB's reject tables, for the run to count them malformed.
    kept = (
        f", store_rejects = true, rejects_table = '{rejects}', rejects_scan = '{rejects}_scans'"
        if rejects
        else ""
    )
    return f"""
SELECT file_id, doc IS NULL AS malformed,
    CASE WHEN json_type(j[1]) IN {_ID_TYPES} THEN j[1] ->> '$' END AS uuid,
    CASE WHEN json_type(j[2]) = 'VARCHAR' THEN j[2] ->> '$' END AS event,
    CASE WHEN json_type(j[3]) IN {_ID_TYPES} THEN j[3] ->> '$' END AS distinct_id,
    CASE json_type(j[4]) WHEN 'OBJECT' THEN CAST(j[4] AS VARCHAR) WHEN 'VARCHAR' THEN j[4] ->> '$'
    END AS props,
    coalesce(json_type(j[4]) NOT IN ('NULL', 'OBJECT', 'VARCHAR'), false) AS props_bad,
    CASE WHEN json_type(j[5]) = 'VARCHAR' THEN {_iso_timestamp("(j[5] ->> '$')")}
         WHEN json_type(j[5]) IN ('BIGINT', 'UBIGINT', 'DOUBLE')
              AND try_cast(j[5] ->> '$' AS DOUBLE) {_MICROS_RANGE}
             THEN make_timestamp(CAST(trunc(CAST(j[5] ->> '$' AS DOUBLE)) AS BIGINT))
    END AS ts
FROM (
    SELECT file_id, doc,
        json_extract(doc, ['$.uuid', '$.event', '$.distinct_id', '$.properties', '$.timestamp']) AS j
    FROM (
        -- A valid document is an object if it starts with '{{' (as an export's lines do); only
        -- the others are parsed once more to tell. (CASE, not AND: a condition's terms may be
        -- evaluated in any order, and json_type fails on what is not JSON.)
        SELECT filename,
            CASE WHEN NOT json_valid(line) THEN NULL
                 WHEN starts_with(line, '{{') THEN line
                 WHEN json_type(line) = 'OBJECT' THEN line
            END AS doc
        -- new_line '\\n': a line ends at \\n, \\r\\n or a lone \\r (the empty lines between
        -- \\r and \\n are skipped below). Left to detect it from the first line, DuckDB drops
        -- the first character after a lone \\r in a file whose first line ends in \\r\\n.
        FROM read_csv({paths}, columns = {{'line': 'VARCHAR'}}, header = false, delim = '\\0',
                      quote = '', escape = '', new_line = '\\n', auto_detect = false,
                      strict_mode = false,
                      compression = '{compression}', filename = true,
                      max_line_size = {MAX_LINE_BYTES}, buffer_size = {2 * MAX_LINE_BYTES},
                      ignore_errors = true{kept})
        -- Blank lines are skipped. (DuckDB's trim of a set of characters reads the whole line,
        -- which costs more than the rest of the line's reading: a line starting '{{' is not blank.)
        WHERE line IS NOT NULL
            AND CASE WHEN starts_with(line, '{{') THEN true ELSE trim(line, ' \t\r') <> '' END
    ) AS lines
    JOIN (VALUES {_file_ids(files)}) AS ids(file_id, path) ON ids.path = lines.filename
) AS docs
"""


# ISO-8601's extended form: a date (years 0001 to 9999), optionally a time (hours 00 to 23: no
# 24:00), optionally Z or an offset of less than a day (no zone names).
_ISO_8601 = (
    r"(000[1-9]|00[1-9]\d|0[1-9]\d{2}|[1-9]\d{3})-\d{2}-\d{2}"
    r"([T ]([01]\d|2[0-3]):\d{2}(:\d{2}(\.\d+)?)?)?"
    r"(Z|z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)?"
)


def _iso_timestamp(text: str) -> str:
    """A UTC TIMESTAMP from ISO-8601 text, NULL for anything else."""
    return (
        f"CASE WHEN regexp_full_match({text}, '{_ISO_8601}') "
        f"THEN CAST(try_cast({text} AS TIMESTAMPTZ) AS TIMESTAMP) END"
    )


def _ts_expr(column: str, dtype: str | None) -> str:
    if dtype is None:
        return "CAST(NULL AS TIMESTAMP)"
    upper = dtype.upper()
    if upper in ("TIMESTAMP_NS", "TIMESTAMPTZ_NS"):
        # Nanoseconds floored to the microsecond (a cast would round 10:59:59.9999999 up into
        # the next hour).
        ns = f"epoch_ns({column})"
        return f"make_timestamp(({ns} - ({ns} % 1000 + 1000) % 1000) // 1000)"
    if upper.startswith("TIMESTAMP") or upper == "DATE":
        return f"CAST({column} AS TIMESTAMP)"
    if upper in _INTEGER_TYPES:
        return (
            f"CASE WHEN {column} {_MICROS_RANGE} THEN make_timestamp(CAST({column} AS BIGINT)) END"
        )
    if upper in ("VARCHAR", "JSON"):
        return _iso_timestamp(f"CAST({column} AS VARCHAR)")
    return "CAST(NULL AS TIMESTAMP)"


def _text_expr(column: str, dtype: str | None, integers: bool = True) -> str:
    """A Parquet column read as text: strings as they are, integers in decimal (`integers`),
    binary as the UTF-8 text it holds (NULL when it holds none), 16 fixed bytes as the UUID they
    spell; NULL for any other type (docs/events.md)."""
    upper = (dtype or "").upper()
    if upper in ("VARCHAR", "JSON", "UUID", "EXTENSION<ARROW.UUID>") or (
        integers and upper in _INTEGER_TYPES
    ):
        return f"CAST({column} AS VARCHAR)"
    if upper == "BLOB":
        return f"TRY(decode({column}))"
    if upper == "FIXED_SIZE_BINARY[16]":
        return (
            f"regexp_replace(lower(hex({column})), "
            "'^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\\1-\\2-\\3-\\4-\\5')"
        )
    return "CAST(NULL AS VARCHAR)"


def _parquet_sql(files: Sequence[tuple[int, ExportFile]], types: dict[str, str]) -> str:
    paths = _file_list(f.path for _, f in files)
    props_type = types.get("properties")
    if props_type is None:
        props, props_bad = "CAST(NULL AS VARCHAR)", "false"
    elif props_type.upper() in ("VARCHAR", "JSON"):
        props, props_bad = 'CAST("properties" AS VARCHAR)', "false"
    elif props_type.upper() == "BLOB":  # JSON text as bytes: unusable unless UTF-8
        props = _text_expr('"properties"', props_type)
        props_bad = f'"properties" IS NOT NULL AND {props} IS NULL'
    elif props_type.upper().startswith(("STRUCT", "MAP")):
        props, props_bad = 'CAST(to_json("properties") AS VARCHAR)', "false"
    else:
        props, props_bad = "CAST(NULL AS VARCHAR)", '"properties" IS NOT NULL'
    event = _text_expr('"event"', types.get("event"), integers=False)
    return f"""
SELECT ids.file_id, false AS malformed,
    {_text_expr('"uuid"', types.get("uuid"))} AS uuid,
    {event} AS event,
    {_text_expr('"distinct_id"', types.get("distinct_id"))} AS distinct_id,
    {props} AS props,
    {props_bad} AS props_bad,
    {_ts_expr('"timestamp"', types.get("timestamp"))} AS ts
FROM read_parquet({paths}, filename = true) AS rows
JOIN (VALUES {_file_ids(files)}) AS ids(file_id, path) ON ids.path = rows.filename
"""


def unreadable_lines_sql(files: Sequence[tuple[int, ExportFile]], rejects: str) -> str:
    """(file_id) per JSONL line of `files` that raw_events_sql(…, rejects) left out, once each
    (run it only if DuckDB created the table `rejects`: it does on the first such line)."""
    return f"""
SELECT ids.file_id
FROM (SELECT DISTINCT s.file_path, e.line
      FROM {rejects} e JOIN {rejects}_scans s USING (scan_id, file_id)) AS lines
JOIN (VALUES {_file_ids(files)}) AS ids(file_id, path) ON ids.path = lines.file_path
"""


def _duckdb_type(arrow_type: pa.DataType) -> str:
    """The name of the DuckDB type a Parquet column of this Arrow type is read as (a dictionary
    column, as pandas' categoricals are written, by its values' type)."""
    t = pa.types
    if t.is_dictionary(arrow_type):
        return _duckdb_type(arrow_type.value_type)
    if t.is_timestamp(arrow_type):
        name = "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
        return f"{name}_NS" if arrow_type.unit == "ns" else name
    if t.is_date(arrow_type):
        return "DATE"
    if t.is_integer(arrow_type):
        return "BIGINT"
    if t.is_string(arrow_type) or t.is_large_string(arrow_type) or t.is_string_view(arrow_type):
        return "VARCHAR"
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type) or t.is_binary_view(arrow_type):
        return "BLOB"
    if t.is_struct(arrow_type):
        return "STRUCT"
    if t.is_map(arrow_type):
        return "MAP"
    return str(arrow_type).upper()


def _parquet_types(path: str) -> dict[str, str]:
    """The DuckDB types of the export columns of a Parquet file, from its footer."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{path}: cannot read Parquet file: {_first_line(exc)}") from exc
    wanted = {"uuid", "event", "distinct_id", "properties", "timestamp"}
    return {f.name: _duckdb_type(f.type) for f in schema if f.name in wanted}


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def raw_events_sql(files: Sequence[tuple[int, ExportFile]], rejects: str | None = None) -> str:
    """A query giving the raw events (classify.RAW_COLUMNS) of `files` ((file_id, file) pairs).

    JSONL lines that are not text DuckDB can read are left out; `rejects` names the table they
    are kept in (see `unreadable_lines_sql`)."""
    groups: dict[tuple[str, ...], list[tuple[int, ExportFile]]] = defaultdict(list)
    parquet_types: dict[tuple[str, ...], dict[str, str]] = {}
    for fid, f in files:
        if f.format == "parquet":
            types = _parquet_types(f.path)
            key = ("parquet", *sorted(f"{k}:{v}" for k, v in types.items()))
            parquet_types[key] = types
        else:
            key = ("jsonl", f.compression)
        groups[key].append((fid, f))
    parts = [
        _parquet_sql(group, parquet_types[key])
        if key[0] == "parquet"
        else _jsonl_sql(group, key[1], rejects)
        for key, group in groups.items()
    ]
    if not parts:
        return (
            "SELECT CAST(NULL AS INTEGER) AS file_id, false AS malformed, "
            "CAST(NULL AS VARCHAR) AS uuid, CAST(NULL AS VARCHAR) AS event, "
            "CAST(NULL AS VARCHAR) AS distinct_id, CAST(NULL AS VARCHAR) AS props, "
            "false AS props_bad, CAST(NULL AS TIMESTAMP) AS ts WHERE false"
        )
    return "\nUNION ALL\n".join(f"({part})" for part in parts)
