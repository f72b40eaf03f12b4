"""``python -m bench``: Dockyard against Distribution 2.8 and 3.1, side by side on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import settings as presets
from bench.report import render
from bench.runner import S3_WORKLOADS, Options, run

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

HEADER = """\
# Benchmark results: Dockyard vs CNCF Distribution 2.8 and 3.1

Last full run of `bench/run` (see `bench/README.md` for how to read the tables). The three
registries ran at the same time on this machine, each at its default settings, with filesystem
storage in a temp dir, measured interleaved; each cell is the median over repetitions with the
min-max range. "vs 2.8" and "vs 3.1" say how many times faster Dockyard is (throughput ratio
Dockyard/Distribution; for times, Distribution/Dockyard). MB = 10^6 bytes. This machine is
shared: "other load" in the CPU table is the CPU that processes outside the benchmark used during
each measurement (in cores, worst repetition); rows where it is high are noisy.

"""


def parse_arguments(argv: list[str]) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, 1 s wrk runs, 2 repetitions (about two minutes)"
    )
    parser.add_argument(
        "-n", "--repetitions", type=int, help="repetitions per workload and registry (default 7, quick 2)"
    )
    parser.add_argument(
        "--workers", type=int, help="Dockyard worker processes (default: Dockyard's own, one per usable CPU)"
    )
    parser.add_argument(
        "--distribution3",
        type=Path,
        metavar="PATH",
        help="Distribution 3.1's registry binary (default: unpacked from ../shared/anchors; "
        "without it that column is skipped)",
    )
    parser.add_argument(
        "--candidate",
        choices=["dockyard", "distribution"],
        default="dockyard",
        help="slot A; 'distribution' runs Distribution against itself, to see "
        "the harness's own noise (all ratios should be about 1)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated workloads (blobs, small, image, pushers, catalog, tls, repositories) "
        "or case-key prefixes (push-, pull-range, head-blob-c16, ...)",
    )
    parser.add_argument("--no-limits", action="store_true", help="skip the machine limits")
    parser.add_argument(
        "--s3",
        action="store_true",
        help="store on a throwaway Ceph RADOS Gateway, each registry in its own bucket, blob GETs "
        "through the registry (storage.redirect.disable); workloads blobs, small, image, pushers",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"markdown results file (default: {RESULTS} after a full run of "
        "everything against Dockyard; otherwise none)",
    )
    parser.add_argument("--tmpdir", type=Path, help="where the temp dir goes (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, storage)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="instead of measuring: run each case once on Dockyard alone under "
        "py-spy and write collapsed stacks and a summary of hot functions to DIR",
    )
    args = parser.parse_args(argv)
    settings = presets.quick() if args.quick else presets.full()
    if args.repetitions:
        settings = presets.Settings(**{**settings.__dict__, "repetitions": args.repetitions})
    options = Options(
        settings=settings,
        workers=args.workers,
        candidate=args.candidate,
        only=[item.strip() for item in args.only.split(",") if item.strip()],
        limits=not args.no_limits,
        tmpdir=args.tmpdir,
        keep=args.keep,
        profile=args.profile,
        distribution3=args.distribution3,
        s3=args.s3,
    )
    output = args.output
    if args.s3:
        options.only = options.only or list(S3_WORKLOADS)
        if set(options.only) & {"catalog", "tls", "repositories"}:
            parser.error(f"--s3 runs only the workloads {', '.join(S3_WORKLOADS)}")
    partial = args.quick or args.only or args.profile or args.s3
    if output is None and not partial and args.candidate == "dockyard":
        output = RESULTS
    return options, output


def main(argv: list[str]) -> int:
    options, output = parse_arguments(argv)
    result = run(options)
    text = render(result)
    print(text)
    if output is not None:
        output.write_text(HEADER + text)
        print(f"written to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
