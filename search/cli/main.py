"""``avspot``: the parser and the dispatch to ``cli.commands``.

Exit codes (docs/contracts.md): 0 ok, 2 bad usage or bad input (one line naming the file,
game or parameter), 1 other failure. Building the parser imports nothing heavy: choices come
from light modules (the spaces package listing, labels, metric names, post-processings).
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from avspot.avmodels.metrics import METRICS, MONITORS
from avspot.avmodels.postprocess import POSTPROCESS
from avspot.datasets.errors import DataError
from avspot.datasets.halves import DEFAULT_DTYPE, FEATURE_DTYPES, SPLITS
from avspot.datasets.labels import DEFAULT_LABEL_SET, FPS, LABEL_SETS
from avspot.datasets.layout import OFFICIAL_SPLITS
from avspot.search.cli import commands
from avspot.search.spaces import available_spaces

Handler = Callable[[argparse.Namespace], int]
SPLITS_HELP = (
    "split source: 'official' (SoccerNet game lists: train 300, valid 100, test 100, challenge "
    '50), a JSON file {"train": [...], "valid": [...], "test": [...], "challenge": [...]}, or '
    '"dirs" (<root>/<split>/...)'
)
# Storage failures of the results/table location (full disk, no permission, read-only mount,
# file size limit): one line naming the file, exit 2 (docs/contracts.md, bad input).
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}


# Every option's flag by its destination (``metric`` -> ``--metric``): the library's errors
# name fields, and only this layer knows which flag sets each (``flag_message``).
FLAGS: dict[str, str] = {}


class _Parser(argparse.ArgumentParser):
    """argparse with the bad-input policy's one-line errors (``avspot --help`` shows usage);
    records each option's flag in ``FLAGS``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"avspot: error: {self.prog}: {message}\n")

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs:
            FLAGS.setdefault(action.dest, longs[0])
        return action


def flag_message(exc: DataError, args: argparse.Namespace | None = None) -> str:
    """A DataError's message with the field it names shown as the flag that sets it: a config
    field as ``--set key`` in the commands that take ``--set``, else the option's own flag."""
    msg, name = str(exc), getattr(exc, "field", None)
    if not name or msg.startswith("--"):
        return msg
    flag = None
    if args is not None and hasattr(args, "set"):
        from avspot.avmodels.train_config import TrainConfig

        if name.removeprefix("model.") in TrainConfig.key_types():
            flag = f"--set {name}"
    flag = flag or FLAGS.get(name)
    if flag is None:
        return msg
    return flag + msg[len(name) :] if msg.startswith(name) else f"{flag}: {msg}"


def _common(p: argparse.ArgumentParser, *, s3: bool = True) -> None:
    """Options every command has: --quiet, and --endpoint-url where it touches S3."""
    p.add_argument(
        "--quiet", action="store_true", help="no progress bars or per-epoch lines on the terminal"
    )
    if s3:
        p.add_argument(
            "--endpoint-url",
            default=None,
            help="S3-compatible endpoint for s3:// URIs (default: $AWS_ENDPOINT_URL, else AWS)",
        )


def _max_length_diff(p: argparse.ArgumentParser) -> None:
    """Ingest and extract-audio share the audio/video length tolerance (5 frames = 2.5 s)."""
    what = "frames by which audio and video may differ before they are refused (default 5)"
    p.add_argument("--max-length-diff", type=int, default=5, help=what)


def _table_format(p: argparse.ArgumentParser, labels_help: str) -> None:
    """synth and ingest: the table's label set and stored feature dtype."""
    p.add_argument(
        "--labels", default=DEFAULT_LABEL_SET, choices=list(LABEL_SETS), help=labels_help
    )
    p.add_argument(
        "--dtype",
        default=DEFAULT_DTYPE,
        choices=list(FEATURE_DTYPES),
        help="stored feature type (default float32; float16 halves the bytes, read as float16)",
    )


def _sets(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=what)


def _data_parsers(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data", help="feature tables: synthesize, ingest, inspect; audio features"
    )
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
    _table_format(
        p,
        "v1: 3 classes (cards, substitutions, goals); v2: SoccerNet-v2's 17 classes at its "
        "per-class rates, some events 'not shown' (default v1)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing table")
    _common(p)
    p.set_defaults(func=commands.data_synth)

    p = dsub.add_parser("ingest", help="turn a SoccerNet (v1 or v2) folder tree into a table")
    p.add_argument("--soccernet", required=True, help="SoccerNet root: <league>/<season>/<game>/")
    p.add_argument(
        "--out", required=True, help="table URI: a local directory or s3://bucket/prefix"
    )
    _table_format(p, "v1 reads Labels.json (3 classes), v2 Labels-v2.json (17 classes, visibility)")
    p.add_argument(
        "--video-features",
        default="ResNET_PCA512",
        help="video feature file stem, {half}_NAME.npy of any width (default ResNET_PCA512; "
        "ResNET, baidu_soccer_embeddings, ...)",
    )
    p.add_argument(
        "--audio-features",
        default="VGGish",
        help="audio feature file stem (default VGGish); 'none': a table without audio",
    )
    p.add_argument(
        "--fps",
        type=float,
        default=FPS,
        help=f"feature frames per second (default {FPS:g}; some Baidu releases are 1)",
    )
    p.add_argument("--splits", default="official", help=SPLITS_HELP)
    _max_length_diff(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing table")
    _common(p)
    p.set_defaults(func=commands.data_ingest)

    p = dsub.add_parser(
        "extract-audio", help="VGGish audio features ({half}_VGGish.npy) from match media"
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="media files, SoccerNet game folders with 1.mkv/2.mkv, or a tree of them",
    )
    p.add_argument(
        "--weights", required=True, help="VGGish state dict (scripts/convert_vggish_weights.py)"
    )
    p.add_argument("--out", required=True, help="output root: <game>/{half}_VGGish.npy")
    p.add_argument(
        "--address", default=None, help="Ray cluster address: one Ray Data job over the games"
    )
    p.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: a GPU when there is one)"
    )
    p.add_argument("--batch-size", type=int, default=128, help="0.5 s chunks per forward pass")
    p.add_argument(
        "--video-features-root",
        default=None,
        help="SoccerNet tree whose {half}_<video features>.npy give the frame counts to align to "
        "(default: the game folders themselves)",
    )
    p.add_argument("--video-features", default="ResNET_PCA512", help="video feature file stem")
    _max_length_diff(p)
    _common(p, s3=False)
    p.set_defaults(func=commands.data_extract_audio)

    p = dsub.add_parser(
        "inspect",
        help="label set, dtype, widths, fps; games, halves, frames, events per class and split",
    )
    p.add_argument("uri", help="table URI")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--verify",
        action="store_true",
        help="read every byte: recompute checksums, decode every row group (default: sizes and "
        "Parquet footers only)",
    )
    _common(p)
    p.set_defaults(func=commands.data_inspect)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="avspot",
        description="Audio + video action spotting: data, training, Ray Tune search, MLflow.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _data_parsers(sub)

    p = sub.add_parser("models", help="list registered poolings and fusion methods")
    _common(p, s3=False)
    p.set_defaults(func=commands.models)

    p = sub.add_parser("train", help="train one configuration (no Tune)")
    p.add_argument("--data", required=True, help="feature table URI")
    _sets(p, "override a config field, e.g. --set fusion=before_fc --set pooling=netvlad")
    p.add_argument("--out", default=None, help="directory for the model and results")
    _common(p)
    p.set_defaults(func=commands.train)

    p = sub.add_parser("search", help="Ray Tune + Optuna (TPE) + ASHA search over a space")
    p.add_argument("--data", required=True, help="feature table URI")
    p.add_argument("--space", required=True, choices=available_spaces(), help="search space")
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
    p.add_argument("--metric", default=MONITORS[0], choices=MONITORS, help="selection metric")
    p.add_argument("--time-budget-s", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--max-epochs", type=int, default=None, help="epoch cap per trial")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument(
        "--storage", default=None, help="results path, local or s3:// (default ./ray_results)"
    )
    _sets(p, "fix a trainer/model field on every trial (wins over the space): --set max_epochs=5")
    _common(p)
    p.set_defaults(func=commands.search)

    p = sub.add_parser("spot", help="spot events in a table's games with a trained model")
    p.add_argument(
        "--model", required=True, help="models:/avspot-spotter@champion, runs:/.., or a path"
    )
    p.add_argument("--data", required=True, help="feature table URI")
    p.add_argument("--split", default="test", choices=SPLITS, help="split to spot (default test)")
    p.add_argument("--out", required=True, help="output directory for results_spotting.json")
    p.add_argument("--method", default="nms", choices=list(POSTPROCESS), help="post-processing")
    p.add_argument(
        "--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N"
    )
    _common(p)
    p.set_defaults(func=commands.spot)

    p = sub.add_parser("evaluate", help="Average-mAP of predictions against labels")
    p.add_argument("--labels", required=True, help="SoccerNet folder tree or feature table URI")
    p.add_argument("--predictions", required=True, help="folder of results_spotting.json files")
    p.add_argument("--metric", default="loose", choices=list(METRICS))
    p.add_argument(
        "--split", default=None, choices=OFFICIAL_SPLITS, help="only the games of this split"
    )
    p.add_argument(
        "--label-set",
        default=None,
        choices=list(LABEL_SETS),
        help="v1 (Labels.json) or v2 (Labels-v2.json); default: the table's or the files found",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _common(p)
    p.set_defaults(func=commands.evaluate)

    p = sub.add_parser("promote", help="move the champion alias to the latest challenger")
    p.add_argument("--experiment", required=True, help="experiment (search) name")
    p.add_argument("--alias", default="champion")
    p.add_argument("--force", action="store_true", help="promote even if it is not better")
    _common(p, s3=False)
    p.set_defaults(func=commands.promote)

    p = sub.add_parser("report", help="tables and figures like the seed's, from MLflow runs")
    p.add_argument("--experiment", required=True, help="experiment (search) name")
    p.add_argument("--out", required=True, help="output directory")
    _common(p, s3=False)
    p.set_defaults(func=commands.report)

    p = sub.add_parser("quickstart", help="synthesize, search, promote, spot: the whole loop")
    p.add_argument(
        "--workdir", default="quickstart", help="working directory (default ./quickstart)"
    )
    _common(p, s3=False)
    p.set_defaults(func=commands.quickstart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(version("avspot"))
        return commands.EXIT_OK
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        if args.command == "data":
            parser.parse_args(["data", "--help"])
        parser.print_help()
        return commands.EXIT_BAD_INPUT
    try:
        return int(func(args) or 0)
    except DataError as exc:
        print(f"avspot: error: {flag_message(exc, args)}", file=sys.stderr)
        return commands.EXIT_BAD_INPUT
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRNOS and not _storage_message(str(exc)):
            raise
        print(f"avspot: error: {_os_error_line(exc)}", file=sys.stderr)
        return commands.EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("avspot: interrupted", file=sys.stderr)
        return 130


def _storage_message(text: str) -> bool:
    """pyarrow's OSErrors carry no errno, only its text."""
    return any(
        s in text
        for s in ("No space left", "Permission denied", "File too large", "Read-only file system")
    )


def _os_error_line(exc: OSError) -> str:
    """``path: reason`` on one line, secrets scrubbed (a full disk, a forbidden directory)."""
    from avspot.datasets.errors import one_line

    if exc.filename and exc.strerror:
        return one_line(OSError(f"{exc.filename}: {exc.strerror}"))
    return one_line(exc)


if __name__ == "__main__":
    sys.exit(main())
