"""The ``escalate`` command: ``escalate demo``, ``chat``, ``calibrate``, ``report``,
``dashboard``, ``store``, ``schema`` and ``escalate --version``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from escalate._cli_store import STORE_COMMANDS, add_store_commands, run_store_command

if TYPE_CHECKING:
    from escalate.calibrate import Calibration, Objective

__all__ = ["main", "receipt_schema"]

_CALIBRATE_HELP = """\
Sweep every threshold of one gate over an evaluation set, pick one by an objective, and
write it where the decorator can read it (escalate.calibrate.threshold).

  escalate calibrate --gsm8k                           the worked example (offline, no keys)
  escalate calibrate app.module:solve --eval set.jsonl --gate confidence --expected-field answer
  escalate calibrate --from escalate-calibration/calibration.json --max-escalation 0.2

Each line of the JSONL evaluation set: {"args": [...], "kwargs": {...}, "expected": ...}
({"input": x} is short for {"args": [x]}). Writes calibration.json and calibration.png to
--out, and the picked threshold to the thresholds file.
"""


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1 (or 0-100%)")
    return value


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text.lstrip("$"))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount of dollars: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _add_calibrate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="pick a gate's threshold from an evaluation set, with its economics",
        description=_CALIBRATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = calibrate.add_argument_group("what to calibrate (one of)")
    source.add_argument(
        "function", nargs="?", help="the @escalating function, as package.module:function"
    )
    source.add_argument(
        "--gsm8k", action="store_true", help="the worked example: recorded GSM8K answers"
    )
    source.add_argument(
        "--from",
        dest="source",
        metavar="JSON",
        help="a calibration.json written before: pick again without calling any model",
    )
    given = calibrate.add_argument_group("with a function")
    given.add_argument("--eval", metavar="JSONL", help="the evaluation set")
    given.add_argument("--gate", help="the name of the gate whose threshold to calibrate")
    given.add_argument("--grader", metavar="MODULE:FUNCTION", help="grade(answer, item) -> bool")
    given.add_argument(
        "--expected-field",
        metavar="FIELD",
        help="compare this field of the answer with each item's 'expected'",
    )
    given.add_argument(
        "--replay",
        action="store_true",
        help="run the real cascade at the picked threshold to check the table (calls models)",
    )
    given.add_argument(
        "--concurrency", type=int, default=8, help="items at a time for an async function"
    )
    aim = calibrate.add_argument_group(
        "objective (default: the most accurate threshold costing no more than the "
        "strongest tier alone)"
    )
    aim.add_argument("--min-accuracy", type=_fraction, metavar="A", help="e.g. 0.8 or 80%%")
    aim.add_argument(
        "--min-accuracy-of-strongest",
        type=_fraction,
        metavar="R",
        help="a share of the strongest tier's own accuracy, e.g. 0.95",
    )
    aim.add_argument(
        "--max-escalation", type=_fraction, metavar="R", help="most calls to escalate, e.g. 0.2"
    )
    aim.add_argument(
        "--max-cost-per-1k", type=_usd, metavar="USD", help="budget in USD per 1,000 calls"
    )
    out = calibrate.add_argument_group("output")
    out.add_argument("--limit", type=int, help="--gsm8k: this many questions (default: all 654)")
    out.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for calibration.json and calibration.png (default: escalate-calibration)",
    )
    out.add_argument(
        "--thresholds",
        type=Path,
        default=None,
        help="the thresholds file to write the pick into (default: $ESCALATE_THRESHOLDS, "
        "else OUT/thresholds.json)",
    )
    out.add_argument("--key", help="the name to write the threshold under")
    out.add_argument("--no-plot", action="store_true", help="skip the PNG")
    out.add_argument("--all-rows", action="store_true", help="print every threshold")
    out.add_argument("--quiet", action="store_true", help="no progress on stderr")


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
    _add_calibrate(commands)
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
        return _calibrate(parser, args)
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


def _objective(args: argparse.Namespace) -> Objective:
    from escalate.calibrate import Objective

    cost = args.max_cost_per_1k
    return Objective(
        min_accuracy=args.min_accuracy,
        min_accuracy_of_strongest=args.min_accuracy_of_strongest,
        max_escalation_rate=args.max_escalation,
        max_cost_per_call_usd=None if cost is None else cost / 1000,
    )


def _calibrate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from escalate import calibrate as cal

    sources = [bool(args.gsm8k), args.function is not None, args.source is not None]
    if sum(sources) != 1:
        parser.error("calibrate takes one of: --gsm8k, module:function, --from JSON")
    if args.limit is not None and (args.limit < 1 or not args.gsm8k):
        parser.error("--limit N (N >= 1) goes with --gsm8k")
    try:
        objective = _objective(args)
    except ValueError as error:
        parser.error(str(error))
    out_dir: Path = args.out or cal.DEFAULT_DIR
    progress = None if args.quiet else _print_progress(sys.stderr)
    replay_text: str | None = None
    status = 0

    if args.gsm8k:
        if not args.quiet:
            print("escalate calibrate --gsm8k: every tier on every question ...", file=sys.stderr)
        from escalate.demo.calibration import calibrate_gsm8k

        result = calibrate_gsm8k(limit=args.limit, objective=objective, progress=progress)
        calibration = result.calibration
        if result.replay is not None:
            replay_text = result.replay.describe(calibration.picked)
            status = 0 if result.matches else 1
    elif args.source is not None:
        try:
            calibration = cal.Calibration.load(args.source)
        except (OSError, ValueError, KeyError, TypeError) as error:
            parser.error(f"--from {args.source}: cannot read a calibration: {error!r}")
        key = args.key or calibration.key
        calibration = cal.analyse(calibration.observations, objective, key=key)
    else:
        if not args.eval or not args.gate:
            parser.error("module:function needs --eval JSONL and --gate NAME")
        calibration, replay_text = _calibrate_function(parser, args, objective, progress)

    if args.key and calibration.key != args.key:
        calibration = cal.analyse(calibration.observations, objective, key=args.key)
    print(calibration.table(all_rows=args.all_rows))
    if replay_text is not None:
        print(replay_text)
    written = [calibration.save(out_dir / "calibration.json")]
    if not args.no_plot:
        try:
            written.append(calibration.plot(out_dir / "calibration.png"))
        except ImportError as error:
            print(f"no plot: {error}", file=sys.stderr)
    if calibration.picked is None:
        status = 1
    else:
        target = args.thresholds
        if target is None and not os.environ.get(cal.THRESHOLDS_ENV):
            target = out_dir / "thresholds.json"
        written.append(calibration.write_threshold(target))
        print(
            f"\nUse it: threshold({calibration.key!r}, default=..., "
            f"path={str(written[-1])!r}) from escalate.calibrate"
        )
    print("Wrote " + ", ".join(str(path) for path in written))
    return status


def _calibrate_function(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    objective: Objective,
    progress: Callable[[int, int], None] | None,
) -> tuple[Calibration, str | None]:
    from escalate import calibrate as cal

    if args.grader and args.expected_field:
        parser.error("give --grader or --expected-field, not both")
    try:
        fn = _import_function(args.function)
        grade = _import_function(args.grader) if args.grader else None
        items = cal.load_items(args.eval)
    except (ValueError, ImportError, AttributeError, OSError) as error:
        parser.error(str(error))
    calibration = cal.calibrate(
        fn,
        items,
        gate=args.gate,
        grade=grade,
        expected_field=args.expected_field,
        objective=objective,
        key=args.key,
        concurrency=args.concurrency,
        progress=progress,
    )
    if not (args.replay and calibration.picked is not None):
        return calibration, None
    checked = cal.replay(
        fn,
        items,
        grade=grade,
        expected_field=args.expected_field,
        gate=args.gate,
        threshold=calibration.picked.threshold,
        concurrency=args.concurrency,
    )
    return calibration, checked.describe(calibration.picked)


def _import_function(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` to the function."""
    module_name, colon, name = spec.partition(":")
    if not colon or not module_name or not name:
        raise ValueError(f"expected module:function, got {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


def _print_progress(out: IO[str]) -> Callable[[int, int], None]:
    """A ``progress`` callback printing every tenth of the way to ``out``."""

    def report(done: int, total: int) -> None:
        step = max(total // 10, 1)
        if done % step == 0 or done == total:
            print(f"  ran every tier on {done}/{total} items", file=out, flush=True)

    return report


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
