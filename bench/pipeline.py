"""Benchmark: leadflow's first run and hourly run against the per-event baseline, side by side.

    python -m bench.pipeline --events 1000000 --format parquet
    python -m bench.pipeline --events 10000000 --format parquet --format jsonl
    python -m bench.pipeline --events 1000000 --batch-hours 1 --no-baseline   # hourly files

For each format it generates the demo export once (cached under bench/data/; daily files, or
one per `--batch-hours` hours), then runs, one after the other, each in a child process of its
own so that peak memory is each one's own: leadflow's first run into a fresh SQLite file, the
baseline (bench/baseline.py) over the same files, and leadflow's hourly run over 100,000 new
events in one new file of the export folder (the run lists the whole folder, as it lists an S3
export's prefix). It prints seconds, events/s, peak memory and the ratios, and where leadflow's
time went (read, aggregate, write); then the same hourly run through the cron endpoint of a
running `leadflow serve`, as a scheduler triggers it."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
END = datetime(2026, 11, 1, tzinfo=UTC)


def export(events: int, fmt: str, days: int = 365, batch_hours: int = 24) -> Path:
    """The cached demo export of `events` events in `fmt` over the `days` days before END, one
    file per `batch_hours` hours of ingestion (generated on first use)."""
    from leadflow.sources.demo import generate_export

    name = f"{events}-{fmt}" + (f"-{days}d" if days != 365 else "")
    folder = DATA / (name + (f"-{batch_hours}h" if batch_hours != 24 else ""))
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        stats = generate_export(
            folder / "export",
            events=events,
            fmt=fmt,  # type: ignore[arg-type]
            days=days,
            end=END,
            batch_hours=batch_hours,
        )
        (folder / ".complete").write_text(json.dumps(stats.__dict__))
        print(
            f"generated {stats.events:,} events as {fmt} over {days} days in {stats.files:,} "
            f"files in {time.perf_counter() - started:.1f} s"
        )
    return folder / "export"


def link_or_copy(source: str | Path, target: str | Path) -> None:
    """`target`: a hard link to `source` where the file system allows, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def linked_copy(source: Path, target: Path) -> None:
    """`target`: a folder holding the files of `source` (see link_or_copy), for a run to add
    files to without touching the cache."""
    shutil.copytree(source, target, copy_function=link_or_copy)


def hourly_batch(fmt: str) -> Path:
    """100,000 new events in one file, just after the year of the big export."""
    from leadflow.sources.demo import generate_export

    folder = DATA / f"hourly-{fmt}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        generate_export(
            folder,
            events=100_000,
            fmt=fmt,  # type: ignore[arg-type]
            days=1,
            batch_hours=24,
            end=END.replace(day=2),
            seed=11,
            late_rate=0.0,
            duplicate_rate=0.0,
        )
        (folder / ".complete").write_text("")
    return folder


def measure(command: list[str]) -> dict[str, Any]:
    """Run a child process; its JSON output plus wall seconds and peak RSS (MiB)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {child.returncode}")
    result: dict[str, Any] = json.loads(output[output.index("{") :])
    result["wall_seconds"] = time.perf_counter() - started
    result["peak_mib"] = usage.ru_maxrss / 1024
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def warm_hourly(path: Path, db: Path) -> dict[str, Any]:
    """The hourly run as production triggers it: `POST /api/cron/analytics` on a running
    `leadflow serve` (its imports and the store's connection already made), timed by the client.
    The server is a child process, stopped by its pid."""
    import httpx

    port = free_port()
    env = os.environ | {
        "LEADFLOW_DATABASE_URL": f"sqlite:///{db}",
        "LEADFLOW_SOURCE": f"file:{path}",
        "LEADFLOW_CRON_SECRET": "bench-secret",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "leadflow.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("leadflow serve did not come up")
            time.sleep(0.1)
        started = time.perf_counter()
        response = httpx.post(
            f"{url}/api/cron/analytics",
            headers={"Authorization": "Bearer bench-secret"},
            timeout=600,
        )
        wall = time.perf_counter() - started
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        result["wall_seconds"] = wall
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def leadflow_run(path: Path, db: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "leadflow.cli",
        "run",
        "--source",
        "file",
        str(path),
        "--database",
        f"sqlite:///{db}",
        "--json",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--format", action="append", choices=["parquet", "jsonl"], dest="formats")
    parser.add_argument("--no-baseline", action="store_true", help="Time leadflow only.")
    parser.add_argument(
        "--batch-hours",
        type=int,
        default=24,
        help="Hours of ingestion per export file (24: daily files; 1: hourly, 8,760 a year).",
    )
    args = parser.parse_args(argv)

    for fmt in args.formats or ["parquet"]:
        cached = export(args.events, fmt, batch_hours=args.batch_hours)
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
            # The export folder as the cron run reads it: the hourly run's new file lands in it,
            # and the run lists the whole folder, as it lists an S3 export's prefix.
            path = Path(tmp) / "export"
            linked_copy(cached, path)
            first = measure(leadflow_run(path, Path(tmp) / "leadflow.db"))
            # The hourly run: one new file of 100,000 events into the store the first run made.
            (new_file,) = (f for f in hourly_batch(fmt).iterdir() if f.name != ".complete")
            shutil.copyfile(new_file, path / new_file.name)
            store = Path(tmp) / "leadflow.db"
            shutil.copyfile(store, Path(tmp) / "warm.db")
            # Flushed before timing: else a run's first fsync of the store would also write out
            # the copy's freshly written pages, which no store in service has.
            os.sync()
            hourly = measure(leadflow_run(path, store))
            # The same hourly run again, on a copy of the same store, through a running service.
            warm = warm_hourly(path, Path(tmp) / "warm.db")
            base = None
            if not args.no_baseline:
                base = measure(
                    [
                        sys.executable,
                        "-m",
                        "bench.baseline",
                        str(cached),
                        "--database",
                        f"sqlite:///{Path(tmp) / 'baseline.db'}",
                        "--json",
                    ]
                )
        report(args.events, fmt, first, hourly, warm, base)


def report(
    events: int,
    fmt: str,
    first: dict[str, Any],
    hourly: dict[str, Any],
    warm: dict[str, Any],
    base: dict[str, Any] | None,
) -> None:
    read = first["events_read"]
    rows = [("leadflow first run", first, read)]
    if base is not None:
        rows.append(("per-event baseline", base, base["events_read"]))
    print(f"\n{events:,} events, {fmt}  ({os.cpu_count()} cores)")
    print(f"{'':22}{'seconds':>10}{'events/s':>14}{'peak MiB':>10}")
    for name, result, n in rows:
        seconds = result["wall_seconds"]
        print(f"{name:22}{seconds:10.1f}{n / seconds:14,.0f}{result['peak_mib']:10,.0f}")
    timings = first["timings"]
    print(
        f"leadflow time: {first['seconds']:.1f} s in the run ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        + "; slice k+1's aggregate overlaps slice k's write), "
        + f"{first['wall_seconds'] - first['seconds']:.1f} s process start-up and the rest"
    )
    if base is not None:
        print(
            f"speed-up vs baseline: {base['wall_seconds'] / first['wall_seconds']:.1f}x; "
            f"memory ratio leadflow/baseline: {first['peak_mib'] / base['peak_mib']:.2f}"
        )
    print(
        f"hourly run of {hourly['events_read']:,} new events: {hourly['wall_seconds']:.2f} s "
        f"wall ({hourly['seconds']:.2f} s in the run), {hourly['hours_written']:,} hours "
        f"rewritten, peak {hourly['peak_mib']:,.0f} MiB"
    )
    print(
        f"the same hourly run through a running service (POST /api/cron/analytics): "
        f"{warm['wall_seconds']:.2f} s end to end ({warm['seconds']:.2f} s in the run)"
    )


if __name__ == "__main__":
    main()
