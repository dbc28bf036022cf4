"""`python -m benchmarks`: run the benchmark, print the table, write the JSON."""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from benchmarks.report import render
from benchmarks.run import OPTIONAL_ROWS, Options, run


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="How close each layer of Hey.sh gets to the embedding model.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("HEYSH_BENCH_QUICK") == "1",
        help="a small corpus, for development (or HEYSH_BENCH_QUICK=1)",
    )
    parser.add_argument(
        "--skip",
        default="",
        help=f"comma-separated rows to leave out: {', '.join(OPTIONAL_ROWS)}",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(".heysh/bench/latest.json"), help="JSON path"
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record py-spy profiles of Serve and the workers per row into DIR",
    )
    parser.add_argument(
        "--keep-state", action="store_true", help="keep the temporary state dir"
    )
    args = parser.parse_args(argv)
    skip = frozenset(filter(None, (name.strip() for name in args.skip.split(","))))
    unknown = skip - set(OPTIONAL_ROWS)
    if unknown:
        parser.error(f"unknown rows to skip: {', '.join(sorted(unknown))}")
    return Options(
        size="quick" if args.quick else "default",
        skip=skip,
        out=args.out,
        concurrency=args.concurrency,
        profile_dir=args.profile,
        keep_state=args.keep_state,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One log line per HTTP request would cost the load generator CPU of its own.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    options = parse(sys.argv[1:] if argv is None else argv)
    report = run(options)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render(report))
    print(f"written: {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
