"""Where a run's cores go: every process of a command's tree sampled for CPU, and the run split into phases.

python bench/timeline.py [--interval 0.1] [--repeats 1] [--json out.json] -- COMMAND...

Why: a whole run's cores busy (CPU / wall, what ``compare.py`` reports) mixes
the start-up, the rendering and the finalize. This says which phase leaves a
core idle, so a missed target can say why (docs/performance.md).

Each process of the command's tree is named by its role from its command
line: ``driver`` (the command), ``server`` (the warm worker server,
``pipeline.runtime.fork_server``, that the driver started), ``worker`` (a
process the server forked, or a worker Beam started itself), ``other`` (the
workers' shims, shells). Phases, from the samples:

- start-up: from the start until a worker first works (more than half
  of a core between two samples);
- rendering: until the last sample in which a worker works (its trace and
  first call included);
- finalize: until the command ends.

Per phase: its length and its cores busy (the CPU of every process in it
over its length); for the rendering, also how long one worker ran while
another had finished (the tail of an uneven split). Sampling misses what a
process used after its last sample, so CPU figures are lower bounds
(``compare.py`` takes exact totals from ``os.wait4``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

SERVER_MODULE = "pipeline.runtime.fork_server"
WORKER_MODULES = ("pipeline.runtime.sdk_worker", "apache_beam.runners.worker.sdk_worker_main")


@dataclasses.dataclass
class Track:
    """One process's samples: (seconds since the start, cumulative CPU seconds)."""

    role: str
    points: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    def working(self, cores: float = 0.5) -> list[tuple[float, float]]:
        """The intervals between two samples in which this process used more than ``cores`` of a core.

        The threshold keeps a worker that is done, but still answers its runner now and then, out of the rendering.
        """
        return [
            (t0, t)
            for (t, c), (t0, before) in zip(self.points[1:], self.points, strict=False)
            if t > t0 and (c - before) / (t - t0) > cores
        ]

    def cpu_between(self, start: float, end: float) -> float:
        """CPU used between two sample times (linear between samples; 0 outside this process's life)."""
        return max(0.0, _cpu_at(self.points, end) - _cpu_at(self.points, start))


def _cpu_at(points: list[tuple[float, float]], t: float) -> float:
    if not points or t <= points[0][0]:
        return 0.0 if not points or t < points[0][0] else points[0][1]
    for (t0, c0), (t1, c1) in zip(points, points[1:], strict=False):
        if t0 <= t <= t1:
            return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1
    return points[-1][1]


def role_of(process: psutil.Process, root_pid: int, server_pids: set[int]) -> str:
    """The process's role in a run, from its command line and parent."""
    if process.pid == root_pid:
        return "driver"
    line = " ".join(process.cmdline())
    if SERVER_MODULE in line:
        return "worker" if process.ppid() in server_pids else "server"
    if any(f"-m {module}" in line for module in WORKER_MODULES):
        return "worker"
    return "other"


def sample_run(command: list[str], interval: float) -> tuple[float, int, dict[int, Track]]:
    """Runs ``command`` (output discarded), sampling every process of its tree; (wall, exit code, tracks)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    tracks: dict[int, Track] = {}
    servers: set[int] = set()
    while proc.poll() is None:
        now = time.perf_counter() - start
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for process in processes:
            try:
                if process.pid not in tracks:
                    tracks[process.pid] = Track(role_of(process, proc.pid, servers))
                    if tracks[process.pid].role == "server":
                        servers.add(process.pid)
                times = process.cpu_times()
                tracks[process.pid].points.append((now, times.user + times.system))
            except psutil.Error:  # ended since the listing
                continue
        time.sleep(interval)
    wall = time.perf_counter() - start
    return wall, proc.returncode if proc.returncode is not None else proc.wait(), tracks


def phases(wall: float, tracks: dict[int, Track]) -> dict[str, Any]:
    """The run's phases and cores busy in each (see the module docstring)."""
    workers = [t for t in tracks.values() if t.role == "worker" and t.working()]
    if not workers:
        return {"wall_s": round(wall, 2), "workers": 0}
    first = min(t.working()[0][0] for t in workers)
    ends = sorted(t.working()[-1][1] for t in workers)
    last = ends[-1]

    def busy(start: float, end: float) -> float | None:
        if end <= start:
            return None
        return round(sum(t.cpu_between(start, end) for t in tracks.values()) / (end - start), 2)

    total_cpu = sum(t.points[-1][1] for t in tracks.values() if t.points)
    return {
        "wall_s": round(wall, 2),
        "workers": len(workers),
        "cpu_s_sampled": round(total_cpu, 2),
        "cores_busy_whole_run": round(total_cpu / wall, 2),
        "startup_s": round(first, 2),
        "cores_busy_startup": busy(0.0, first),
        "rendering_s": round(last - first, 2),
        "cores_busy_rendering": busy(first, last),
        "tail_s": round(last - ends[0], 2),  # one worker done, another still rendering
        "finalize_s": round(wall - last, 2),
        "cpu_s_by_role": {
            role: round(sum(t.points[-1][1] for t in tracks.values() if t.role == role and t.points), 2)
            for role in ("driver", "server", "worker", "other")
        },
        "worker_cpu_s": sorted(round(t.points[-1][1], 2) for t in workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    runs = []
    for _ in range(args.repeats):
        wall, code, tracks = sample_run(command, args.interval)
        if code != 0:
            sys.exit(f"timeline: the command exited with {code}")
        runs.append(phases(wall, tracks))
        print(json.dumps(runs[-1]), flush=True)
    medians = {}
    for key in runs[0]:
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        if values:
            medians[key] = statistics.median(values)
    print("medians:", json.dumps(medians))
    if args.json is not None:
        args.json.write_text(json.dumps({"command": command, "runs": runs, "medians": medians}, indent=1))


if __name__ == "__main__":
    main()
