"""`python -m service.settings --markdown` prints the settings table; `--write-doc` writes it
into docs/operating.md, between its markers."""

from __future__ import annotations

import argparse
import sys

from .markdown import DOC, markdown_table, write_doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.settings",
                                     description="The node's settings table, from its "
                                                 "declaration (service/settings/table.py).")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--markdown", action="store_true", help="print the table (Markdown)")
    action.add_argument("--write-doc", action="store_true", help=f"write it into {DOC}")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
    else:
        write_doc()
        print(f"wrote the settings table into {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
