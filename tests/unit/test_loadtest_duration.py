"""DURATION of the load tests: plain seconds or locust's own forms, one parser for every script."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.duration import env_duration, parse_duration, readable

ROOT = Path(__file__).resolve().parents[2]

ACCEPTED = {"45": 45, "1": 1, "30s": 30, "90s": 90, "2m": 120, "90m": 5400, "1h": 3600,
            "1h30m": 5400, "1m30s": 90, "1h10s": 3610, "1h30m10s": 5410, "0h0m5s": 5}
REFUSED = ["0", "0s", "0h0m0s", "00", "-5", "-5s", "", " 45", "45 ", "45\n", "1.5", "1.5m",
           "1d", "2M", "2H", "h", "m", "s", "hms", "1m1h", "30s2m", "1h 30m", "30 s", "30sec",
           "1min", "abc", "+5", "\u0661\u0662", "5s5s"]


def locust_parse_timespan():
    """locust's own parser, read from its file: importing the package would monkey-patch this
    process with gevent."""
    spec = importlib.util.find_spec("locust")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "util" / "timespan.py"
    module_spec = importlib.util.spec_from_file_location("locust_timespan", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.parse_timespan


@pytest.mark.parametrize(("value", "seconds"), ACCEPTED.items())
def test_plain_seconds_and_locusts_forms_are_accepted(value, seconds):
    assert parse_duration(value) == seconds
    assert locust_parse_timespan()(value) == seconds  # what locust's --run-time makes of it


@pytest.mark.parametrize("value", REFUSED)
def test_zero_negative_and_garbage_are_refused_naming_duration_and_the_forms(value):
    with pytest.raises(ValueError, match=r"DURATION must be .*30s, 2m, 1h, 1h30m") as refused:
        parse_duration(value)
    assert repr(value) in str(refused.value)


def test_the_environment_variable_defaults_when_unset_or_empty(monkeypatch):
    monkeypatch.delenv("DURATION", raising=False)
    assert env_duration("DURATION", 45) == 45
    monkeypatch.setenv("DURATION", "")
    assert env_duration("DURATION", 20) == 20
    monkeypatch.setenv("DURATION", "1h30m")
    assert env_duration("DURATION", 45) == 5400


def test_a_refused_environment_value_exits_with_the_message(monkeypatch):
    monkeypatch.setenv("DURATION", "2x")
    with pytest.raises(SystemExit) as exited:
        env_duration("DURATION", 45)
    assert "DURATION" in str(exited.value.code) and "'2x'" in str(exited.value.code)


@pytest.mark.parametrize(("seconds", "text"), [(45, "45 s"), (120, "2 min"), (90, "1 min 30 s"),
                                               (5400, "1 h 30 min"), (3601, "1 h 1 s")])
def test_durations_are_shown_readably(seconds, text):
    assert readable(seconds) == text


@pytest.mark.parametrize("script", ["run.py", "capacity.py", "bench.py", "profile.py"])
def test_every_script_refuses_a_bad_duration_with_one_line_and_no_traceback(script, tmp_path):
    """Each reads DURATION before it starts or writes anything."""
    env = {"PATH": "/usr/bin:/bin", "DURATION": "1h-30m", "BENCH_RESULTS": str(tmp_path / "b"),
           "PROFILE_RESULTS": str(tmp_path / "p"), "RESULTS_DIR": str(tmp_path / "r")}
    run = subprocess.run([sys.executable, f"loadtests/{script}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        "DURATION must be seconds (45) or locust's forms (30s, 2m, 1h, 1h30m, 1m30s, 1h30m10s), "
        "got '1h-30m'"]
    assert not list(tmp_path.iterdir())
