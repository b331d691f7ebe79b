"""`make profile`'s reading of py-spy's collapsed stacks."""

from loadtests.profile import library, short, tally

STACKS = """\
run (gevent/hub.py:10);writer (engineio/socket.py:200);send (gevent/_socketcommon.py:5) 6
run (gevent/hub.py:10);writer (engineio/socket.py:200) 2
main (/work/main/service/realtime.py:3);dumps (json/__init__.py:1);iterencode (json/encoder.py:2) 1
<module> (threading.py:1) 1
"""


def test_own_inclusive_and_library_shares_add_up(tmp_path):
    path = tmp_path / "node-1.collapsed"
    path.write_text(STACKS)
    own, inclusive, by_library, total = tally([path])
    assert total == 10
    assert own["send (gevent/_socketcommon.py)"] == 6
    assert own["writer (engineio/socket.py)"] == 2
    assert inclusive["writer (engineio/socket.py)"] == 8
    assert inclusive["run (gevent/hub.py)"] == 8
    assert by_library == {"gevent": 6, "engineio": 2, "json": 1, "stdlib": 1}


def test_frames_are_named_without_line_numbers_or_install_prefixes():
    assert short("poll (/x/.venv/lib/python3.11/site-packages/engineio/socket.py:42)") == (
        "poll (engineio/socket.py)")
    assert library("poll (/x/.venv/lib/python3.11/site-packages/engineio/socket.py:42)") == (
        "engineio")
    assert library("on_send (/work/main/service/realtime.py:80)") == "service"
    assert library("mystery") == "(native)"
