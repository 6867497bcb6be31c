"""Scores of one model on several seeds, pooled: what `scripts/codes.py eval --json` wrote, a file a seed.

One seed's set is small: 1,000 stress digits (77 a class) or 4,000 code digits measure an accuracy near 0.97
to about +-0.5 points, and a class to about +-2, one standard error. Pooled over seeds, an accuracy is every
seed's right answers over all their digits; its standard error is the binomial one of that pool, and the
seeds' own spread (lowest and highest) is kept beside it, so a reader sees both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

SETS = {  # pooled name: (the eval JSON's accuracy key, its count key, items a count holds)
    "code_digits": ("digit_accuracy", "codes", 4),
    "whole_codes": ("code_accuracy", "codes", 1),
    "unseen_digits": ("unseen_digit_accuracy", "unseen_digits", 1),
}


class PoolError(ValueError):
    """Scores that cannot be pooled: of different models or settings, a seed twice, or not eval's JSON."""


def _pool(parts: list[tuple[float, int]]) -> dict:
    """(accuracy, items) a seed -> the pooled accuracy, its binomial standard error, items, and the seeds' range."""
    items = sum(n for _, n in parts)
    right = sum(round(accuracy * n) for accuracy, n in parts)  # eval's accuracies are counts over items
    accuracy = right / items
    return {"accuracy": accuracy, "standard_error": math.sqrt(accuracy * (1 - accuracy) / items), "items": items,
            "seeds": len(parts), "lowest": min(a for a, _ in parts), "highest": max(a for a, _ in parts)}


def _same(scores: list[dict], key: str, what: str) -> None:
    values = {str(score.get(key)) for score in scores}
    if len(values) > 1:
        raise PoolError(f"the scores are of different {what}: {', '.join(sorted(values))}")


def pooled(scores: Iterable[dict]) -> dict:
    """Pool `scores` (eval JSONs of one model, a seed each) -> {"model", "framework", "code_seeds",
    set name: pooled, "stress": {"split", "seeds", "overall": pooled, "classes": {class: pooled}}}; a set only
    when every score has it. Raises PoolError for scores that are not one model's on distinct seeds."""
    scores = list(scores)
    if not scores:
        raise PoolError("no scores to pool")
    for score in scores:
        if not isinstance(score, dict) or not {"model", "seed", "digit_accuracy", "codes"} <= score.keys():
            raise PoolError("not the JSON of scripts/codes.py eval --json")
    _same(scores, "model", "models")
    _same(scores, "size", "code sizes")
    seeds = [score["seed"] for score in scores]
    if len(set(seeds)) < len(seeds):
        raise PoolError(f"code seed {next(s for s in seeds if seeds.count(s) > 1)} is given twice")
    result = {"model": scores[0]["model"], "framework": scores[0].get("framework"), "code_seeds": sorted(seeds)}
    for name, (accuracy, count, per) in SETS.items():
        if all(accuracy in score for score in scores):
            result[name] = _pool([(score[accuracy], per * score[count]) for score in scores])
    stresses = [score["stress"] for score in scores if "stress" in score]
    if stresses and len(stresses) == len(scores):
        _same(stresses, "split", "stress splits")
        stress_seeds = [stress["seed"] for stress in stresses]
        if len(set(stress_seeds)) < len(stress_seeds):
            raise PoolError(f"stress seed {next(s for s in stress_seeds if stress_seeds.count(s) > 1)} is given twice")
        classes = {}
        for stress in stresses:
            for name, score in stress["classes"].items():
                classes.setdefault(name, []).append((score["accuracy"], score["n"]))
        result["stress"] = {"split": stresses[0]["split"], "seeds": sorted(stress_seeds),
                            "overall": _pool([(stress["overall"], stress["n"]) for stress in stresses]),
                            "classes": {name: _pool(parts) for name, parts in classes.items()}}
    return result


def rows(pools: list[dict]) -> list[tuple[str, list[dict]]]:
    """(row name, each pool's figure) for every set all `pools` have: the code sets, unseen digits, stress
    overall, then each stress class."""
    out = [(name, [pool[name] for pool in pools]) for name in SETS if all(name in pool for pool in pools)]
    if all("stress" in pool for pool in pools):
        out.append(("stress overall", [pool["stress"]["overall"] for pool in pools]))
        for name in pools[0]["stress"]["classes"]:
            if all(name in pool["stress"]["classes"] for pool in pools):
                out.append((f"stress: {name}", [pool["stress"]["classes"][name] for pool in pools]))
    return out


def table(pools: list[dict], names: list[str]) -> str:
    """A Markdown table: a row a set, a column a pool (accuracy +- standard error, [seeds' lowest, highest]),
    and with two pools the gap between them in points."""
    head = "| set | " + " | ".join(names) + (" | gap (points) |" if len(pools) == 2 else " |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for name, figures in rows(pools):
        cells = [f"{f['accuracy']:.4f} ± {f['standard_error']:.4f} [{f['lowest']:.3f}, {f['highest']:.3f}]"
                 for f in figures]
        if len(figures) == 2:
            cells.append(f"{100 * abs(figures[0]['accuracy'] - figures[1]['accuracy']):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
