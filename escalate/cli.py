"""The ``escalate`` command: ``escalate demo`` (more commands join as they are built)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="escalate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run the cascade offline over recorded GSM8K answers (no keys)"
    )
    demo.add_argument("--limit", type=int, default=40, help="questions to run (default 40)")
    demo.add_argument("--all", action="store_true", help="every uncontaminated dev question")
    demo.add_argument("--quiet", action="store_true", help="print the summary only")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from escalate.demo import run_demo

        if args.limit < 1:
            parser.error("--limit must be at least 1")
        run_demo(None if args.all else args.limit, out=sys.stdout, verbose=not args.quiet)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
