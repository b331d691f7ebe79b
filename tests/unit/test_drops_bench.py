"""The drops part's verdict, summary and settings (loadtests/drops_bench.py, drops_report.py)."""

import pytest

from loadtests.drops_accounting import DUPLICATE_CAUSES, MISSING_CAUSES
from loadtests.drops_bench import Settings, choose, failures
from loadtests.drops_report import losses


def row(system: str = "rooms-3", **figures) -> dict:
    base = {"system": system, "delivered_percent": 100.0, "duplicates": 0, "out_of_order": 0,
            "unacknowledged_sends": 0,
            "missing_by_cause": dict.fromkeys(MISSING_CAUSES, 0),
            "duplicates_by_cause": dict.fromkeys(DUPLICATE_CAUSES, 0)}
    return {**base, **figures}


def test_a_clean_run_of_this_service_passes_whatever_the_reference_did():
    reference = row("node-reference-3-streams", delivered_percent=84.6, duplicates=7,
                    out_of_order=3)
    assert failures([row(), reference]) == []


@pytest.mark.parametrize("figures", [{"delivered_percent": 99.99}, {"delivered_percent": None},
                                     {"duplicates": 1}, {"out_of_order": 2},
                                     {"unacknowledged_sends": 1}])
def test_this_service_fails_on_any_loss_repeat_disorder_or_unacknowledged_send(figures):
    assert len(failures([row(**figures)])) == 1


def test_losses_name_each_cause_largest_first():
    missing = dict.fromkeys(MISSING_CAUSES, 0) | {"recovered": 11}
    duplicates = dict.fromkeys(DUPLICATE_CAUSES, 0) | {"stored_twice": 20}
    summary = losses(row(missing_by_cause=missing, duplicates_by_cause=duplicates,
                         out_of_order=3))
    assert summary == ("duplicate: a resend stored twice 20; missing: a recovered reconnect "
                       "lacked it 11; out of order 3")
    assert losses(row()) == "none"


def test_settings_come_from_the_environment_and_refuse_nonsense(monkeypatch):
    for name in ("DROPS_UP_S", "DROPS_ROOMS", "DROPS_SENDERS", "DROPS_RECEIVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DURATION", "1m")
    monkeypatch.setenv("DROPS_DOWN_S", "1.5")
    settings = Settings.from_env()
    assert (settings.duration_s, settings.up_s, settings.down_s) == (60, 3.0, 1.5)
    assert (settings.rooms, settings.senders, settings.receivers) == (4, 2, 10)
    monkeypatch.setenv("DROPS_UP_S", "soon")
    with pytest.raises(SystemExit, match="DROPS_UP_S"):
        Settings.from_env()


def test_systems_are_chosen_by_name():
    assert [s.name for s in choose(None)] == ["rooms-3", "node-reference-3-streams"]
    assert [s.mode for s in choose("node-reference-3-streams")] == ["recovery"]
    with pytest.raises(SystemExit, match="unknown"):
        choose("rooms-9")
