"""One handler per ``avspot`` command: read the parsed arguments, call the library, print.

Each handler imports what it needs when it runs, so that building the parser (and ``--help``)
loads no torch, ray or mlflow. A handler returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from avspot.search.cli.sets import parse_sets

# The exit codes (docs/contracts.md): this layer alone owns them.
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _say(line: str) -> None:
    """A driver line on stdout at once (a module function: Tune pickles its callbacks)."""
    print(line, flush=True)


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)


# ---- data ---------------------------------------------------------------------------------------


def _table_write(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments every command that writes a table passes on."""
    return {"overwrite": args.overwrite, "endpoint": args.endpoint_url, "progress": _progress(args)}


def _wrote(what: str, manifest: Any, where: str, t0: float) -> None:
    """``what`` (with a {games} field), the counts, ``where``, the speed and the fingerprint."""
    dt = time.perf_counter() - t0
    c = manifest.counts
    print(
        f"{what.format(games=c['games'])} ({c['halves']} halves, {c['events']} events) {where} "
        f"in {dt:.1f}s ({c['halves'] / dt:.1f} halves/s); fingerprint {manifest.fingerprint[:12]}"
    )


def data_synth(args: argparse.Namespace) -> int:
    from avspot.datasets.synth import synthesize

    t0 = time.perf_counter()
    generator = {
        "games": args.games,
        "seed": args.seed,
        "half_minutes": args.half_minutes,
        "labels": args.labels,
        "dtype": args.dtype,
    }
    manifest = synthesize(args.out, **generator, **_table_write(args))
    what = "wrote {games} synthetic games" + ("" if args.labels == "v1" else f" ({args.labels})")
    _wrote(what, manifest, f"to {args.out}", t0)
    return EXIT_OK


def data_ingest(args: argparse.Namespace) -> int:
    from avspot.datasets.soccernet import ingest

    t0 = time.perf_counter()
    sources = {
        "labels": args.labels,
        "video_features": args.video_features,
        "audio_features": args.audio_features,
        "splits": args.splits,
        "max_length_diff": args.max_length_diff,
        "fps": args.fps,
        "dtype": args.dtype,
    }
    manifest = ingest(args.soccernet, args.out, **sources, **_table_write(args))
    _wrote("ingested {games} games", manifest, f"from {args.soccernet} to {args.out}", t0)
    return EXIT_OK


def data_extract_audio(args: argparse.Namespace) -> int:
    from avspot.datasets.audio.extract import extract_audio, format_summary

    summary = extract_audio(
        args.inputs,
        args.weights,
        args.out,
        address=args.address,
        device=args.device,
        batch_size=args.batch_size,
        progress=_progress(args),
        max_length_diff=args.max_length_diff,
        video_features_root=args.video_features_root,
        video_features=args.video_features,
    )
    print(format_summary(summary))
    return EXIT_OK


def data_inspect(args: argparse.Namespace) -> int:
    from avspot.datasets.inspect import format_summary, inspect_table

    summary = inspect_table(args.uri, endpoint=args.endpoint_url, verify=args.verify)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return EXIT_OK


# ---- models, train, spot, evaluate --------------------------------------------------------------


def models(args: argparse.Namespace) -> int:
    from avspot.avmodels.catalog import catalog

    print(catalog())
    return EXIT_OK


def train(args: argparse.Namespace) -> int:
    from avspot.search.cli.train import train_from_table

    log = (lambda _line: None) if args.quiet else print
    result = train_from_table(
        args.data,
        overrides=parse_sets(args.set),
        out_dir=args.out,
        endpoint=args.endpoint_url,
        log=log,
    )
    print(result.summary())
    return EXIT_OK


def spot(args: argparse.Namespace) -> int:
    from avspot.avmodels.spotting import spot_halves
    from avspot.datasets.progress import progress
    from avspot.datasets.storage import check_writable_dir
    from avspot.datasets.table import iter_halves
    from avspot.datasets.verify import check_table
    from avspot.search.tracking.registry import load_spotter

    # A bad table or output location is refused before the model is loaded (bad-input policy).
    manifest = check_table(args.data, endpoint=args.endpoint_url)
    check_writable_dir(args.out, "out")
    model, _ = load_spotter(args.model, args.device)
    total = manifest.counts["per_split"].get(args.split, {}).get("halves")
    halves = iter_halves(args.data, args.split, endpoint=args.endpoint_url)
    written = spot_halves(
        model,
        progress(halves, total=total, desc="spot", enabled=_progress(args), unit="half"),
        args.out,
        args.method,
        source=f"{args.data} split {args.split!r}",
    )
    print(f"wrote {len(written)} results_spotting.json files under {args.out}")
    return EXIT_OK


def evaluate(args: argparse.Namespace) -> int:
    from avspot.avmodels.evaluate import evaluate as run_evaluate
    from avspot.avmodels.evaluate import format_result

    result = run_evaluate(
        labels=args.labels,
        predictions=args.predictions,
        metric=args.metric,
        split=args.split,
        endpoint=args.endpoint_url,
        progress=_progress(args),
        label_set=args.label_set,
    )
    print(json.dumps(result) if args.json else format_result(result))
    return EXIT_OK


# ---- search and tracking ------------------------------------------------------------------------


def search(args: argparse.Namespace) -> int:
    from avspot.search.tuning.tuner import SearchOptions, run_search

    opts = SearchOptions(
        data=args.data,
        space=args.space,
        trials=args.trials,
        max_concurrent=args.max_concurrent,
        gpus_per_trial=args.gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial,
        experiment=args.experiment,
        address=args.address,
        resume=args.resume,
        metric=args.metric,
        time_budget_s=args.time_budget_s,
        max_epochs=args.max_epochs,
        seed=args.seed,
        storage=args.storage,
        endpoint=args.endpoint_url,
        fixed=parse_sets(args.set),
        progress=_progress(args),
    )
    result = run_search(opts, log=_say)
    return EXIT_OK if result.best is not None else EXIT_FAILURE


def promote(args: argparse.Namespace) -> int:
    """Exit 0 promoted (or already champion), 1 refused, 2 bad input."""
    from avspot.search.tracking.registry import promote as run_promote

    res = run_promote(args.experiment, alias=args.alias, force=args.force)
    if res.promoted:
        print(res.message)
        return EXIT_OK
    print(f"{res.message} (use --force to promote anyway)", file=sys.stderr)
    return EXIT_FAILURE


def report(args: argparse.Namespace) -> int:
    from avspot.datasets.storage import check_writable_dir
    from avspot.search.reporting.report import build_report, compute_lines

    check_writable_dir(args.out, "out")  # before any MLflow query
    out = build_report(args.experiment, args.out)
    for line in compute_lines(out):  # what each search cost, against the full grid
        print(line)
    print(f"wrote {out / 'report.md'}")
    return EXIT_OK


def quickstart(args: argparse.Namespace) -> int:
    from avspot.search.cli.quickstart import quickstart as run_quickstart

    run_quickstart(args.workdir)
    return EXIT_OK
