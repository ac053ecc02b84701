"""Tiny processing job: writes evaluation.json with a given accuracy (stdlib only).

Usage: python3 evaluate.py --accuracy 0.9 [--output /opt/ml/processing/evaluation]
"""

import argparse
import json
import os


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accuracy", type=float, default=0.9)
    parser.add_argument("--output", default="/opt/ml/processing/evaluation")
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    report = {"metrics": {"accuracy": {"value": args.accuracy}}}
    with open(os.path.join(args.output, "evaluation.json"), "w") as f:
        json.dump(report, f)
    print(f"accuracy={args.accuracy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
