"""TensorFlow's thread pools per worker (``--tf-threads``) and the frozen import objects."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.cli import main
from pipeline.errors import UserError
from pipeline.runtime import tf_threads as worker_runtime
from pipeline.runtime.tf_threads import MAX_TF_THREADS, parse_tf_threads, resolve_tf_threads
from tests.helpers import ROOT, run, shard_bytes

MULTI = ["--direct_running_mode=multi_processing"]


@pytest.mark.parametrize(
    ("cpus", "beam_args", "expected"),
    [
        (2, ["--direct_num_workers=2", *MULTI], 1),
        (8, ["--direct_num_workers=2", *MULTI], 4),
        (8, ["--direct_num_workers=3", *MULTI], 2),
        (2, ["--direct_num_workers=4", *MULTI], 1),  # never 0, which would mean every core
        (8, ["--direct_num_workers=0", *MULTI], 1),  # Beam: 0 workers = one per core
        (8, ["--direct_num_workers=1", *MULTI], 0),  # one process: TensorFlow's default
        (8, ["--direct_num_workers=2"], 0),  # in_memory: threads of one process
        (8, ["--direct_num_workers=2", "--direct_running_mode=multi_threading"], 0),
        (8, [], 1),  # the default: one multi_processing worker per core
        (2, [], 1),
        (1, [], 0),  # one core: one in-process worker
        (8, ["--direct_running_mode=in_memory"], 0),  # the user's mode wins
        (8, ["--runner=DataflowRunner", "--direct_num_workers=2", *MULTI], 0),  # a cluster sizes its own workers
    ],
)
def test_auto_divides_the_cores_among_local_worker_processes(monkeypatch, cpus, beam_args, expected):
    monkeypatch.setattr(worker_runtime, "usable_cpus", lambda: cpus)
    assert resolve_tf_threads("auto", beam_args) == expected


def test_an_explicit_count_wins():
    assert resolve_tf_threads(3, ["--direct_num_workers=2", *MULTI]) == 3
    assert resolve_tf_threads("0", ["--direct_num_workers=2", *MULTI]) == 0
    assert parse_tf_threads("auto") == "auto"


@pytest.mark.parametrize("bad", ["-1", "x", "1.5", "", -2, 1.0, True])
def test_bad_counts_are_refused_in_one_line(bad):
    with pytest.raises(UserError, match=r"--tf-threads .*auto, 0 \(TensorFlow's default\) or a positive integer"):
        resolve_tf_threads(bad, [])


@pytest.mark.parametrize(
    ("bad", "shown"), [("1025", "'1025'"), ("9" * 30, "'99999999999999999999'... (30 characters)")]
)
def test_more_threads_than_any_machine_has_cores_are_refused(bad, shown):
    """A thread is a real OS thread in every worker process: a million would exhaust the machine first."""
    assert resolve_tf_threads(str(MAX_TF_THREADS), []) == MAX_TF_THREADS
    with pytest.raises(UserError) as info:
        resolve_tf_threads(bad, [])
    assert str(info.value).startswith(f"--tf-threads {shown}: at most {MAX_TF_THREADS} threads per worker process")


def test_cli_refuses_a_bad_count_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--input", str(ROOT / "examples" / "photos"), "--output", str(out), "--tf-threads", "many"])
    assert code == 2
    assert "--tf-threads 'many'" in capsys.readouterr().err
    assert not out.exists()


def _in_fresh_process(code: str) -> dict:
    """Runs ``code`` (which prints one JSON line last) in a new Python: TensorFlow not yet initialised there."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_configure_sizes_the_pools_and_freezes_the_import_once():
    seen = _in_fresh_process(
        "import gc, json\n"
        "from pipeline.runtime.tf_threads import configure_tensorflow, tensorflow_threads\n"
        "configure_tensorflow(1)\n"
        "frozen = gc.get_freeze_count()\n"
        "made_since = [[] for _ in range(50_000)]\n"
        "configure_tensorflow(3)\n"  # a second DoFn instance in the same process: no change, no second freeze
        "print(json.dumps({'threads': tensorflow_threads(), 'frozen': frozen, 'again': gc.get_freeze_count()}))\n"
    )
    assert seen["threads"] == [1, 1]
    assert seen["frozen"] > 100_000  # TensorFlow's import leaves several hundred thousand objects
    assert seen["again"] < seen["frozen"] + 1000  # the 50,000 lists made since were not frozen


@pytest.fixture(scope="module")
def default_run(photos_with_bad, tmp_path_factory):
    """The job in this process, TensorFlow's default pools."""
    out = tmp_path_factory.mktemp("default") / "out"
    run(photos_with_bad, out)
    return out


def test_the_job_gives_its_worker_the_count_and_the_bytes_do_not_change(photos_with_bad, default_run, tmp_path):
    """--tf-threads reaches the worker (in-memory: this process) and the shards equal a default-threads run."""
    out = tmp_path / "out"
    seen = _in_fresh_process(
        "import contextlib, io, json\n"
        "from pipeline.cli import main\n"
        "from pipeline.runtime.tf_threads import tensorflow_threads\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main(['run', '--input', {str(photos_with_bad)!r}, '--output', {str(out)!r},\n"
        "        '--image-size', '32', '32', '--copies', '3', '--seed', '1', '--num-shards', '3',\n"
        "        '--max-error-rate', '0.5', '--tf-threads', '1', '--progress', 'none',\n"
        "        '--', '--direct_num_workers=1'])\n"
        "print(json.dumps({'code': code, 'threads': tensorflow_threads()}))\n"
    )
    assert seen == {"code": 0, "threads": [1, 1]}
    assert shard_bytes(out) == shard_bytes(default_run)  # manifest and report included: threads are not recorded
