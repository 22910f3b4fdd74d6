"""The ``escalate`` command: ``escalate demo``, ``chat``, ``calibrate``, ``learn``,
``report``, ``dashboard``, ``store``, ``schema`` and ``escalate --version``."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from escalate._cli_calibrate import add_calibrate_command, run_calibrate
from escalate._cli_learn import add_learn_command, run_learn
from escalate._cli_store import STORE_COMMANDS, add_store_commands, run_store_command

__all__ = ["main", "receipt_schema"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from escalate import __version__

    parser = argparse.ArgumentParser(prog="escalate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"escalate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run the cascade offline over recorded GSM8K answers (no keys)"
    )
    demo.add_argument("--limit", type=int, default=40, help="questions to run (default 40)")
    demo.add_argument("--all", action="store_true", help="every uncontaminated dev question")
    demo.add_argument("--quiet", action="store_true", help="print the summary only")
    demo.add_argument(
        "--store", help="write the cascade's receipts here (default: a temporary SQLite file)"
    )
    _add_chat(commands)
    add_calibrate_command(commands)
    add_learn_command(commands)
    commands.add_parser(
        "schema",
        help="print the JSON Schema of receipts (docs/receipt-schema.json is this output)",
    )
    add_store_commands(commands)
    args = parser.parse_args(argv)

    if args.command == "demo":
        return _demo(parser, args)
    if args.command in STORE_COMMANDS:
        return run_store_command(parser, args)
    if args.command == "calibrate":
        return run_calibrate(parser, args)
    if args.command == "learn":
        return run_learn(parser, args)
    if args.command == "chat":
        return _chat(parser, args)
    if args.command == "schema":
        sys.stdout.write(receipt_schema())
        return 0
    return 0  # pragma: no cover - argparse requires a command


def receipt_schema() -> str:
    """The receipt's JSON Schema as written to JSON (``mode="serialization"``: the computed
    totals included), with the schema version, as ``escalate schema`` prints it."""
    import json

    from escalate._receipt import SCHEMA_VERSION, Receipt

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **Receipt.model_json_schema(mode="serialization"),
    }
    schema["title"] = f"escalate receipt, schema version {SCHEMA_VERSION}"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from escalate.demo import run_demo

    if args.limit < 1:
        parser.error("--limit must be at least 1")
    store = args.store
    if store is None:
        try:
            import sqlalchemy  # noqa: F401
        except ModuleNotFoundError:
            print("(no store: pip install 'escalate[store]' to keep the receipts)")
        else:
            store = str(Path(tempfile.mkdtemp(prefix="escalate-demo-")) / "receipts.db")
    limit = None if args.all else args.limit
    run_demo(limit, out=sys.stdout, verbose=not args.quiet, store=store)
    return 0


def _add_chat(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat = commands.add_parser(
        "chat",
        help="an interactive chat: each turn starts on the cheap tier, which answers or escalates",
    )
    chat.add_argument("--provider", default="openai", help="openai, anthropic or google (the pair)")
    chat.add_argument("--base-url", help="an OpenAI-compatible server (with --cheap/--strong)")
    chat.add_argument("--cheap", help="the cheap model's name")
    chat.add_argument("--strong", help="the strong model's name")
    chat.add_argument("--api-key", help="the key (default: the provider's environment variable)")
    chat.add_argument(
        "--offline", action="store_true", help="play both models on a local server: no keys"
    )
    chat.add_argument(
        "--ladder",
        action="store_true",
        help="a conversation on the ladder: strong for the framing turns, cheap after, "
        "back up on a trigger, a handoff memory at every switch",
    )
    chat.add_argument(
        "--framing-turns", type=int, default=2, help="--ladder: turns on the strong tier first"
    )
    chat.add_argument("--receipt", type=Path, help="--ladder: write the conversation receipt")


def _chat(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from escalate.chat import offline_server, run_chat, tiers_for

    if args.ladder:
        return _ladder_chat(parser, args)
    try:
        if args.offline:
            server, tiers = offline_server(args.provider)
        else:
            server = None
            tiers = tiers_for(
                args.provider,
                base_url=args.base_url,
                cheap=args.cheap,
                strong=args.strong,
                api_key=args.api_key,
            )
    except ValueError as error:
        parser.error(str(error))
    try:
        run_chat(tiers, input=sys.stdin, output=sys.stdout)
    finally:
        if server is not None:
            server.stop()
    return 0


def _ladder_chat(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from escalate.chat import tiers_for
    from escalate.conversation._terminal import (
        offline_ladder_server,
        run_ladder_chat,
        transcript_json,
    )

    if args.framing_turns < 1:
        parser.error("--framing-turns must be at least 1")
    server = None
    try:
        if args.offline:
            server, tiers = offline_ladder_server(args.provider)
        else:
            tiers = tiers_for(
                args.provider,
                base_url=args.base_url,
                cheap=args.cheap,
                strong=args.strong,
                api_key=args.api_key,
            )
    except ValueError as error:
        parser.error(str(error))
    try:
        chat = run_ladder_chat(
            tiers, input=sys.stdin, output=sys.stdout, framing_turns=args.framing_turns
        )
    finally:
        if server is not None:
            server.stop()
    if args.receipt is not None:
        args.receipt.write_text(transcript_json(chat) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
