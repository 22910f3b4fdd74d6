"""The learn command: ``escalate learn``, a learned gate trained from labelled receipts.

The parser is built without importing escalate.learn, the store or scikit-learn; the
command imports them when it runs. ``--gsm8k`` hands over to the worked example,
``escalate.demo.learning.learn_gsm8k``, imported only then.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import IO, Any

from escalate._cli_store import moment

__all__ = ["add_learn_command", "run_learn"]

_LEARN_HELP = """\
Train a learned gate of the cheap tier's answers from the labels the store holds: users'
feedback (escalate.feedback), audits, and escalated calls whose stronger answer agreed or
disagreed with the cheap one on --key. Prints the split and the cross-validated AUC, and
writes the model (JSON) to --out.

  escalate learn --store sqlite:///receipts.db --function solve --key answer --out model.json
  escalate learn --gsm8k                               the worked example (offline, no keys)

Receipts keep no prompts: the model reads the answers alone unless --prompt-tag names a
tag the calls were filed with that holds the prompt (escalate.options(tags=...)).
Use the model with escalate.learn.learned_gate("model.json", at=...), and pick its
threshold with escalate calibrate on held-out items.
"""


def add_learn_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    learn = commands.add_parser(
        "learn",
        help="train a learned gate from labelled receipts (needs the learn extra)",
        description=_LEARN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = learn.add_argument_group("what to learn from (one of)")
    source.add_argument("--store", help="the receipt store: a SQLite path or a database URL")
    source.add_argument(
        "--gsm8k", action="store_true", help="the worked example on the recorded GSM8K answers"
    )
    labels = learn.add_argument_group("labels")
    labels.add_argument("--function", help="the escalating function (module.qualname or name)")
    labels.add_argument("--tier", help="the tier whose answers are judged (default: the cheapest)")
    labels.add_argument("--key", help="the answer's field to compare with a stronger answer")
    labels.add_argument("--since", type=moment, help="receipts started since (date or 7d)")
    labels.add_argument("--until", type=moment, help="receipts started before")
    labels.add_argument("--prompt-tag", help="a tag holding each call's prompt text")
    model = learn.add_argument_group("the model")
    model.add_argument("--extra", help="user features: package.module:function(prompt, answer)")
    model.add_argument("--C", type=float, default=1.0, help="inverse regularisation (1.0)")
    model.add_argument("--folds", type=int, default=5, help="cross-validation folds (5)")
    model.add_argument("--seed", type=int, default=0, help="the split's seed (0)")
    model.add_argument("--balanced", action="store_true", help="weigh both classes equally")
    learn.add_argument("--out", type=Path, help="the model file to write (JSON)")
    learn.add_argument("--limit", type=int, help="--gsm8k: questions to use")
    learn.add_argument("--quiet", action="store_true", help="--gsm8k: print the summary only")


def run_learn(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    if args.gsm8k:
        if args.store is not None:
            parser.error("give --store or --gsm8k, not both")
        return _learn_gsm8k(args)
    if args.store is None or args.function is None or args.out is None:
        parser.error("learn needs --store URL, --function NAME and --out FILE (or --gsm8k)")
    return _learn_from_store(parser, args, sys.stdout)


def _learn_gsm8k(args: argparse.Namespace) -> int:
    learning: Any = importlib.import_module("escalate.demo.learning")
    quiet = args.quiet

    def progress(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr, flush=True)

    result = learning.learn_gsm8k(
        limit=args.limit, seed=args.seed, folds=args.folds, C=args.C, progress=progress
    )
    print(result.report())
    if args.out is not None:
        path = result.final.scorer.save(args.out)
        print(
            f"\nThe gate trained on every question is in {path} (its threshold: calibrate it "
            "on questions it did not learn from)."
        )
    return 0


def _learn_from_store(
    parser: argparse.ArgumentParser, args: argparse.Namespace, out: IO[str]
) -> int:
    from escalate._cli_calibrate import _import_function
    from escalate.learn import Features, labels_from_store, train

    extra = None
    if args.extra:
        try:
            extra = _import_function(args.extra)
        except (ImportError, AttributeError, ValueError) as error:
            parser.error(f"--extra {args.extra}: {error}")
    tag = args.prompt_tag
    examples = labels_from_store(
        args.store,
        function=args.function,
        since=args.since,
        until=args.until,
        tier=args.tier,
        key=args.key,
        prompt_of=(lambda receipt: receipt.tags.get(tag)) if tag else None,
    )
    print(f"{len(examples)} labelled answers of {args.function} in {args.store}", file=out)
    if not args.key:
        print("(no --key: escalated calls give no labels)", file=out)
    features = Features(prompt=bool(tag), extra=extra)
    try:
        trained = train(
            examples,
            features=features,
            C=args.C,
            folds=args.folds,
            seed=args.seed,
            balanced=args.balanced,
        )
    except ValueError as error:
        print(f"escalate learn: cannot train: {error}", file=out)
        return 1
    print(trained.describe(), file=out)
    path = trained.scorer.save(args.out)
    print(f"Model written to {path}", file=out)
    return 0
