"""The calibrate command: ``escalate calibrate``.

The parser is built without importing escalate.calibrate; the command imports it when it
runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from escalate.calibrate import Calibration, Objective

__all__ = ["add_calibrate_command", "run_calibrate"]

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


def add_calibrate_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="pick a gate's threshold from an evaluation set, with its economics",
        description=_CALIBRATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_sources(calibrate)
    _add_function_options(calibrate)
    _add_objective_options(calibrate)
    _add_output_options(calibrate)


def _add_sources(calibrate: argparse.ArgumentParser) -> None:
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


def _add_function_options(calibrate: argparse.ArgumentParser) -> None:
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


def _add_objective_options(calibrate: argparse.ArgumentParser) -> None:
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
    aim.add_argument(
        "--max-cost-of-strongest",
        type=_fraction,
        metavar="R",
        help="a share of what the strongest tier alone costs, e.g. 0.5",
    )


def _add_output_options(calibrate: argparse.ArgumentParser) -> None:
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


def _objective(args: argparse.Namespace) -> Objective:
    from escalate.calibrate import Objective

    cost = args.max_cost_per_1k
    return Objective(
        min_accuracy=args.min_accuracy,
        min_accuracy_of_strongest=args.min_accuracy_of_strongest,
        max_escalation_rate=args.max_escalation,
        max_cost_per_call_usd=None if cost is None else cost / 1000,
        max_cost_of_strongest=args.max_cost_of_strongest,
    )


def run_calibrate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from escalate import calibrate as cal

    objective = _checked_objective(parser, args)
    out_dir: Path = args.out or cal.DEFAULT_DIR
    progress = None if args.quiet else _print_progress(sys.stderr)
    replay_text: str | None = None
    status = 0

    if args.gsm8k:
        calibration, replay_text, status = _calibrate_gsm8k(args, objective, progress)
    elif args.source is not None:
        calibration = _calibrate_again(parser, args, objective)
    else:
        if not args.eval or not args.gate:
            parser.error("module:function needs --eval JSONL and --gate NAME")
        calibration, replay_text = _calibrate_function(parser, args, objective, progress)

    if args.key and calibration.key != args.key:
        calibration = cal.analyse(calibration.observations, objective, key=args.key)
    print(calibration.table(all_rows=args.all_rows))
    if replay_text is not None:
        print(replay_text)
    if not _write(args, calibration, out_dir):
        status = 1
    return status


def _checked_objective(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Objective:
    """The command's objective, once its arguments are checked to go together."""
    sources = [bool(args.gsm8k), args.function is not None, args.source is not None]
    if sum(sources) != 1:
        parser.error("calibrate takes one of: --gsm8k, module:function, --from JSON")
    if args.limit is not None and (args.limit < 1 or not args.gsm8k):
        parser.error("--limit N (N >= 1) goes with --gsm8k")
    try:
        return _objective(args)
    except ValueError as error:
        parser.error(str(error))


def _calibrate_gsm8k(
    args: argparse.Namespace,
    objective: Objective,
    progress: Callable[[int, int], None] | None,
) -> tuple[Calibration, str | None, int]:
    """``--gsm8k``: the calibration, its replay's description, and the exit status so far."""
    if not args.quiet:
        print("escalate calibrate --gsm8k: every tier on every question ...", file=sys.stderr)
    from escalate.demo.calibration import calibrate_gsm8k

    result = calibrate_gsm8k(limit=args.limit, objective=objective, progress=progress)
    calibration = result.calibration
    if result.replay is None:
        return calibration, None, 0
    replay_text = result.replay.describe(calibration.picked)
    return calibration, replay_text, 0 if result.matches else 1


def _calibrate_again(
    parser: argparse.ArgumentParser, args: argparse.Namespace, objective: Objective
) -> Calibration:
    """``--from JSON``: pick again from the observations written before."""
    from escalate import calibrate as cal

    try:
        calibration = cal.Calibration.load(args.source)
    except (OSError, ValueError, KeyError, TypeError) as error:
        parser.error(f"--from {args.source}: cannot read a calibration: {error!r}")
    key = args.key or calibration.key
    return cal.analyse(calibration.observations, objective, key=key)


def _write(args: argparse.Namespace, calibration: Calibration, out_dir: Path) -> bool:
    """Write the calibration, its plot and the picked threshold; False if none was picked."""
    from escalate import calibrate as cal

    written = [calibration.save(out_dir / "calibration.json")]
    if not args.no_plot:
        try:
            written.append(calibration.plot(out_dir / "calibration.png"))
        except ImportError as error:
            print(f"no plot: {error}", file=sys.stderr)
    picked = calibration.picked is not None
    if picked:
        target = args.thresholds
        if target is None and not os.environ.get(cal.THRESHOLDS_ENV):
            target = out_dir / "thresholds.json"
        written.append(calibration.write_threshold(target))
        print(
            f"\nUse it: threshold({calibration.key!r}, default=..., "
            f"path={str(written[-1])!r}) from escalate.calibrate"
        )
    print("Wrote " + ", ".join(str(path) for path in written))
    return picked


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
