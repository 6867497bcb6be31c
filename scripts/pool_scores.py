#!/usr/bin/env python
"""Pool a model's scores over several seeds, and put models side by side.

    python scripts/pool_scores.py runs/best-torch/test-seeds runs/best-keras/test-seeds
    python scripts/pool_scores.py runs/best-torch/test-seeds runs/best-keras/test-seeds --json runs/test-seeds.json

Each folder holds one model's `scripts/codes.py eval --json` files, a seed each (`make best-test-seeds` writes
them). For each set (code digits, whole codes, unseen-style digits, the stress set and each of its classes) the
pooled accuracy is all the seeds' right answers over all their digits, with its binomial standard error and
the lowest and highest seed beside it (parity/runs/pooled.py). Prints a Markdown table, a column a folder, and
with two folders the gap between them in percentage points.
"""

from __future__ import annotations

import json
from pathlib import Path

from parity import cli
from parity.runs.pooled import PoolError, pooled, table


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=cli.existing_folder, nargs="+", help="a folder of eval JSONs a model")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the pooled scores to FILE (atomically)")
    return parser.parse_args(argv)


def read_scores(folder: Path) -> list[dict]:
    paths = sorted(folder.glob("*.json"))
    if not paths:
        cli.fail(f"{folder}: no .json files (scripts/codes.py eval --json writes them)")
    scores = []
    for path in paths:
        try:
            scores.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            cli.fail(f"{path}: not readable JSON ({' '.join(str(error).split())})")
    return scores


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.json and (reason := cli.unwritable_reason(args.json)):
        cli.fail(f"--json {args.json}: {reason}")
    pools = []
    for folder in args.folders:
        try:
            pools.append(pooled(read_scores(folder)))
        except PoolError as error:
            cli.fail(f"{folder}: {error}")
    names = [pool.get("framework") or str(folder) for pool, folder in zip(pools, args.folders)]
    if len(set(names)) < len(names):
        names = [str(folder) for folder in args.folders]
    print(table(pools, names))
    if args.json:
        from parity.files import write_json

        write_json(args.json, {str(folder): pool for folder, pool in zip(args.folders, pools)})
    return 0


if __name__ == "__main__":
    cli.run(main)
