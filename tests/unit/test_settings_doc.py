"""The settings table of docs/operating.md is the one generated from the declaration."""

from service.settings import __main__ as command
from service.settings.markdown import BEGIN, DOC, END, markdown_table, split_doc, write_doc
from service.settings.table import TABLE

REGENERATE = "python -m service.settings --write-doc"


def test_the_operating_doc_holds_the_generated_table():
    _, table, _ = split_doc(DOC.read_text())
    assert table == markdown_table(), (
        f"docs/operating.md's settings table differs from service/settings/table.py: run "
        f"`{REGENERATE}` (and edit the table there, not in the doc)")


def test_the_table_has_a_row_per_setting_in_order():
    rows = markdown_table().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{s.name}`" for s in TABLE]
    assert all(row.count(" | ") == 3 for row in rows)


def test_writing_the_doc_replaces_only_the_table(tmp_path):
    doc = tmp_path / "operating.md"
    doc.write_text(f"# Before\n\n{BEGIN}\n| stale |\n{END}\n\nafter\n")
    write_doc(doc)
    assert doc.read_text() == f"# Before\n\n{BEGIN}\n{markdown_table()}{END}\n\nafter\n"


def test_the_command_prints_the_table(capsys):
    assert command.main(["--markdown"]) == 0
    assert capsys.readouterr().out == markdown_table()
