"""The ladder: the tiers of a conversation, strongest first, and how many turns each holds.

``[("openai/gpt-4o", 2), ("openai/gpt-4o-mini", None)]`` means: the first two turns on
gpt-4o, every later one on gpt-4o-mini. ``[(strong, 2), (mid, 3), (light, None)]`` steps
down twice. The order is the order of strength: a rung is stronger than every rung after
it, so a turn that fails its gates on a rung escalates, within the turn, to the rungs
before it. A step-down pattern is configuration: these rungs, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from escalate._config import Tier
from escalate.exceptions import ConfigurationError

__all__ = ["Ladder", "Rung", "as_ladder"]


@dataclass(frozen=True)
class Rung:
    """One rung: a tier and the turns it holds on the schedule (``None``: the rest)."""

    tier: Tier | str
    turns: int | None = None

    @property
    def name(self) -> str:
        """How receipts name the rung's tier."""
        return self.tier if isinstance(self.tier, str) else self.tier.display_name


@dataclass(frozen=True)
class Ladder:
    """Checked rungs, strongest first."""

    rungs: tuple[Rung, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(rung.name for rung in self.rungs)

    @property
    def strongest(self) -> int:
        return 0

    @property
    def lightest(self) -> int:
        return len(self.rungs) - 1

    def scheduled(self, turn: int) -> int:
        """The rung the schedule puts turn ``turn`` (1-based) on."""
        end = 0
        for index, rung in enumerate(self.rungs):
            if rung.turns is None:
                return index
            end += rung.turns
            if turn <= end:
                return index
        return self.lightest

    def phase(self, index: int) -> str:
        """The schedule's words for a rung: ``gpt-4o for turns 1-2``."""
        start = 1 + sum(rung.turns or 0 for rung in self.rungs[:index])
        turns = self.rungs[index].turns
        if turns is None:
            return f"{self.rungs[index].name} from turn {start} on"
        last = start + turns - 1
        span = f"turn {start}" if last == start else f"turns {start}-{last}"
        return f"{self.rungs[index].name} for {span}"

    def tiers_from(self, index: int) -> list[Tier | str]:
        """The tiers of a turn on rung ``index``: that rung first (the cheapest of the
        turn), then every stronger rung, so a failing answer escalates within the turn."""
        return [self.rungs[i].tier for i in range(index, -1, -1)]

    def all_tiers(self) -> list[Tier | str]:
        """Every rung, cheapest first: the tiers of one escalating function."""
        return self.tiers_from(self.lightest)


def as_ladder(spec: object) -> Ladder:
    """``ladder=`` checked: a non-empty list of ``(tier, turns)`` pairs (or :class:`Rung`),
    strongest first, each ``turns`` an int >= 1 but the last, which may be ``None``."""
    if isinstance(spec, Ladder):
        return spec
    if isinstance(spec, (str, Tier)) or not isinstance(spec, Sequence) or not spec:
        raise ConfigurationError(
            "ladder must be a non-empty list of (tier, turns), strongest first, e.g. "
            '[("openai/gpt-4o", 2), ("openai/gpt-4o-mini", None)]'
        )
    rungs = tuple(_rung(item, index) for index, item in enumerate(spec))
    for index, rung in enumerate(rungs[:-1]):
        if rung.turns is None:
            raise ConfigurationError(
                f"ladder[{index}] holds every remaining turn (None) but is not the last rung"
            )
    names = [rung.name for rung in rungs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError(
            f"ladder names the tier {duplicates[0]!r} twice: each rung is one tier, "
            "strongest first (give Tier(..., name=...) to tell two apart)"
        )
    return Ladder(rungs)


def _rung(item: object, index: int) -> Rung:
    if isinstance(item, Rung):
        tier, turns = item.tier, item.turns
    elif isinstance(item, (str, Tier)):
        tier, turns = item, None
    elif isinstance(item, tuple) and len(item) == 2:
        tier, turns = item
    else:
        raise ConfigurationError(
            f"ladder[{index}] is {item!r}: a rung is (tier, turns), a tier, or a Rung"
        )
    if not isinstance(tier, (str, Tier)):
        raise ConfigurationError(
            f"ladder[{index}]: a rung's tier is a 'provider/model' string or a Tier, "
            f"got {type(tier).__name__}"
        )
    if turns is not None and (isinstance(turns, bool) or not isinstance(turns, int) or turns < 1):
        raise ConfigurationError(
            f"ladder[{index}]: turns is an int >= 1 (or None for the rest), got {turns!r}"
        )
    return Rung(tier, turns)
