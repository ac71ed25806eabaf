"""The `avspot` command line: parses arguments and calls library functions.

Every handler imports what it needs lazily, so `avspot --help` never loads torch, ray or mlflow.
Exit codes (DESIGN section 5): 0 ok, 2 bad usage or bad input, 1 other failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _add_endpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--endpoint-url",
        default=None,
        help="S3-compatible endpoint for s3:// URIs (default: $AWS_ENDPOINT_URL, else AWS)",
    )


def _parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            from avspot.datasets.errors import DataError

            raise DataError(f"--set {pair!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


# ---- data -------------------------------------------------------------------------------------


def cmd_data_synth(args: argparse.Namespace) -> int:
    from avspot.datasets.synth import synthesize

    t0 = time.perf_counter()
    manifest = synthesize(
        args.out,
        games=args.games,
        seed=args.seed,
        half_minutes=args.half_minutes,
        overwrite=args.overwrite,
        endpoint=args.endpoint_url,
    )
    dt = time.perf_counter() - t0
    halves = manifest.counts["halves"]
    print(
        f"wrote {manifest.counts['games']} synthetic games ({halves} halves) to {args.out} "
        f"in {dt:.1f}s ({halves / dt:.1f} halves/s); fingerprint {manifest.fingerprint[:12]}"
    )
    return EXIT_OK


def cmd_data_ingest(args: argparse.Namespace) -> int:
    from avspot.datasets.soccernet import ingest

    t0 = time.perf_counter()
    manifest = ingest(
        args.soccernet,
        args.out,
        video_features=args.video_features,
        audio_features=args.audio_features,
        splits=args.splits,
        max_length_diff=args.max_length_diff,
        overwrite=args.overwrite,
        endpoint=args.endpoint_url,
    )
    dt = time.perf_counter() - t0
    halves = manifest.counts["halves"]
    print(
        f"ingested {manifest.counts['games']} games ({halves} halves, "
        f"{manifest.counts['events']} events) from {args.soccernet} to {args.out} in {dt:.1f}s "
        f"({halves / dt:.1f} halves/s); fingerprint {manifest.fingerprint[:12]}"
    )
    return EXIT_OK


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from avspot.datasets.inspect import format_summary, inspect_table

    summary = inspect_table(args.uri, endpoint=args.endpoint_url)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return EXIT_OK


# ---- train / spot / evaluate -------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from avspot.avmodels.trainer import train_from_table

    result = train_from_table(
        args.data,
        overrides=_parse_sets(args.set),
        out_dir=args.out,
        endpoint=args.endpoint_url,
        log=print,
    )
    print(result.summary())
    return EXIT_OK


def cmd_spot(args: argparse.Namespace) -> int:
    from avspot.avmodels.spotting import spot_table
    from avspot.search.registry import load_spotter

    model = load_spotter(args.model)
    written = spot_table(
        model,
        args.data,
        split=args.split,
        out_dir=args.out,
        method=args.method,
        endpoint=args.endpoint_url,
    )
    print(f"wrote {len(written)} results_spotting.json files under {args.out}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from avspot.avmodels.evaluate import evaluate, format_result

    result = evaluate(
        args.labels,
        args.predictions,
        metric=args.metric,
        split=args.split,
        endpoint=args.endpoint_url,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(format_result(result))
    return EXIT_OK


# ---- search / tracking --------------------------------------------------------------------------


def cmd_search(args: argparse.Namespace) -> int:
    from avspot.search.tuner import run_search_cli

    return run_search_cli(args)


def cmd_promote(args: argparse.Namespace) -> int:
    from avspot.search.registry import promote_cli

    return promote_cli(args)


def cmd_report(args: argparse.Namespace) -> int:
    from avspot.search.report import report_cli

    return report_cli(args)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from avspot.search.quickstart import quickstart_cli

    return quickstart_cli(args)


def cmd_models(args: argparse.Namespace) -> int:
    from avspot.avmodels.__main__ import main as models_main

    return models_main([])


# ---- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avspot",
        description="Audio + video action spotting: data, training, Ray Tune search, MLflow.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="feature tables: synthesize, ingest, inspect")
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    p = dsub.add_parser("synth", help="write synthetic SoccerNet-shaped games to a feature table")
    p.add_argument(
        "--out", required=True, help="table URI: a local directory or s3://bucket/prefix"
    )
    p.add_argument("--games", type=int, default=20, help="number of games (default 20)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument(
        "--half-minutes", type=float, default=45.0, help="regular minutes per half (default 45)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing table")
    _add_endpoint(p)
    p.set_defaults(func=cmd_data_synth)

    p = dsub.add_parser("ingest", help="turn a SoccerNet v1 folder tree into a feature table")
    p.add_argument("--soccernet", required=True, help="SoccerNet root: <league>/<season>/<game>/")
    p.add_argument(
        "--out", required=True, help="table URI: a local directory or s3://bucket/prefix"
    )
    p.add_argument("--video-features", default="ResNET_PCA512", help="video feature file stem")
    p.add_argument("--audio-features", default="VGGish", help="audio feature file stem")
    p.add_argument(
        "--splits",
        default="official",
        help="split source: 'official' (SoccerNet game lists), a JSON file "
        '{"train": [...], "valid": [...], "test": [...]}, or "dirs" (<root>/<split>/...)',
    )
    p.add_argument(
        "--max-length-diff",
        type=int,
        default=5,
        help="frames by which audio and video may differ before ingest refuses (default 5)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing table")
    _add_endpoint(p)
    p.set_defaults(func=cmd_data_ingest)

    p = dsub.add_parser("inspect", help="games, halves, frames, events per class and split")
    p.add_argument("uri", help="table URI")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_endpoint(p)
    p.set_defaults(func=cmd_data_inspect)

    p = sub.add_parser("train", help="train one configuration (no Tune)")
    p.add_argument("--data", required=True, help="feature table URI")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set fusion=before_fc --set pooling=netvlad",
    )
    p.add_argument("--out", default=None, help="directory for checkpoints and results")
    _add_endpoint(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("search", help="Ray Tune + Optuna (TPE) + ASHA search over a space")
    p.add_argument("--data", required=True, help="feature table URI")
    p.add_argument("--space", required=True, help="search space name (see search/spaces/)")
    p.add_argument("--trials", type=int, default=None, help="number of trials")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at once")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial (may be < 1)")
    p.add_argument(
        "--cpus-per-trial",
        type=float,
        default=None,
        help="CPUs per trial (default 1; local Ray keeps 1 CPU free for Ray Data)",
    )
    p.add_argument("--experiment", default=None, help="experiment name (default: avspot-SPACE)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search")
    p.add_argument("--metric", default="val_average_map", help="val_average_map or val_map")
    p.add_argument("--time-budget-s", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--max-epochs", type=int, default=None, help="epoch cap per trial")
    p.add_argument("--seed", type=int, default=0, help="TPE seed")
    p.add_argument(
        "--storage", default=None, help="results path, local or s3:// (default ./ray_results)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fix a trainer/model field on every trial (wins over the space): --set max_epochs=5",
    )
    _add_endpoint(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("spot", help="spot events in a table's games with a trained model")
    p.add_argument(
        "--model", required=True, help="models:/avspot-spotter@champion, runs:/.., or a path"
    )
    p.add_argument("--data", required=True, help="feature table URI")
    p.add_argument("--split", default="test", help="split to spot (default test)")
    p.add_argument("--out", required=True, help="output directory for results_spotting.json")
    p.add_argument(
        "--method", default="nms", choices=["center", "max", "nms"], help="post-processing"
    )
    _add_endpoint(p)
    p.set_defaults(func=cmd_spot)

    p = sub.add_parser("evaluate", help="Average-mAP of predictions against labels")
    p.add_argument("--labels", required=True, help="SoccerNet folder tree or feature table URI")
    p.add_argument("--predictions", required=True, help="folder of results_spotting.json files")
    p.add_argument("--metric", default="loose", choices=["loose", "tight"])
    p.add_argument("--split", default=None, help="only this split of a feature table")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_endpoint(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("promote", help="move the champion alias to the latest challenger")
    p.add_argument("--experiment", required=True, help="experiment (search) name")
    p.add_argument("--alias", default="champion")
    p.add_argument("--force", action="store_true", help="promote even if it is not better")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("report", help="tables and figures like the seed's, from MLflow runs")
    p.add_argument("--experiment", required=True, help="experiment (search) name")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("quickstart", help="synthesize, search, promote, spot: the whole loop")
    p.add_argument(
        "--workdir", default="quickstart", help="working directory (default ./quickstart)"
    )
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("models", help="list registered poolings and fusion methods")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from avspot import __version__

        print(__version__)
        return EXIT_OK
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        if args.command == "data":
            parser.parse_args(["data", "--help"])
        parser.print_help()
        return EXIT_BAD_INPUT
    from avspot.datasets.errors import DataError

    try:
        return int(func(args) or 0)
    except DataError as exc:
        print(f"avspot: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("avspot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
