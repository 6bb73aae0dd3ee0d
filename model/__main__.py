"""``python -m model``: train, export and evaluate Modelship models.

Examples::

    python -m model train --run-dir runs/linear                      # synthetic data
    python -m model train --run-dir runs/house --csv house.csv --target price
    python -m model export --run-dir runs/linear --base-path models --name linear --min-r2 0.9
    python -m model evaluate --version-dir models/linear/1 --csv runs/linear/test.csv --plot fit.png
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from model.errors import PipelineError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model",
        description="Train, evaluate and export models for Modelship / TensorFlow Serving.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a linear regression and evaluate it on a held-out split",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument(
        "--run-dir",
        type=Path,
        required=True,
        help="empty directory for the run: saved_model/, run.json, test.csv",
    )
    t.add_argument("--csv", type=Path, help="train on this CSV (header row) instead of synthetic data")
    t.add_argument("--target", default="y", help="CSV column to predict")
    t.add_argument(
        "--feature",
        dest="features",
        action="append",
        help="CSV feature column; repeat for several (default: every column but the target)",
    )
    t.add_argument("--features", dest="n_features", type=int, default=3, help="number of synthetic features")
    t.add_argument("--samples", type=int, default=2000, help="number of synthetic rows")
    t.add_argument("--noise", type=float, default=0.1, help="std-dev of synthetic label noise")
    t.add_argument("--seed", type=int, default=0, help="seed for data, split and initialisation")
    t.add_argument("--test-fraction", type=float, default=0.2, help="share of rows held out")
    t.add_argument("--epochs", type=int, default=40, help="passes over the training split")
    t.add_argument("--learning-rate", type=float, default=0.01, help="gradient-descent step size")
    t.add_argument("--batch-size", type=int, default=64, help="rows per gradient step")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    e = sub.add_parser(
        "export",
        help="apply the quality gate and export a run to a model base path",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    e.add_argument("--run-dir", type=Path, required=True, help="run directory written by `train`")
    e.add_argument(
        "--base-path",
        required=True,
        help="root of model base paths, a directory or s3://bucket/path or gs://bucket/path; "
        "the version lands in BASE/NAME/VERSION (in a bucket: files first, manifest.json last)",
    )
    e.add_argument("--name", default="linear", help="model name (the servable name)")
    e.add_argument("--version", type=int, help="version number (default: the next integer)")
    e.add_argument("--min-r2", type=float, help="refuse to export if held-out R² is below this")
    e.add_argument("--max-mse", type=float, help="refuse to export if held-out MSE is above this")
    e.add_argument(
        "--no-litert",
        dest="litert",
        action="store_false",
        help="do not write the verified LiteRT artifacts (litert/*.tflite) that the slim server image "
        "serves; the full image converts at load instead",
    )

    v = sub.add_parser(
        "evaluate",
        help="evaluate an exported version on a CSV",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    v.add_argument("--version-dir", type=Path, required=True, help="BASE/NAME/VERSION directory")
    v.add_argument("--csv", type=Path, required=True, help="CSV with the feature and target columns")
    v.add_argument("--target", help="target column (default: the one recorded in the manifest)")
    v.add_argument("--plot", type=Path, help="write a PNG of fit, residuals and loss curve here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return _run(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return exc.exit_code


def _run(args: argparse.Namespace) -> int:
    log = logging.getLogger("model")
    if args.command == "train":
        from model.data import load_csv, synthetic
        from model.linear import TrainConfig
        from model.pipeline import train_run

        data = (
            load_csv(args.csv, args.features, args.target)
            if args.csv
            else synthetic(args.samples, args.n_features, args.noise, args.seed)
        )
        config = TrainConfig(
            epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size, seed=args.seed
        )
        run = train_run(data, config, args.test_fraction, args.run_dir, progress=not args.no_progress)
        log.info("held-out metrics: %s", json.dumps(run["metrics"]))
        log.info("run written to %s", args.run_dir)
    elif args.command == "export":
        from model.metrics import QualityGate
        from model.pipeline import export_run

        gate = QualityGate(min_r2=args.min_r2, max_mse=args.max_mse)
        path = export_run(args.run_dir, args.base_path, args.name, gate, args.version, litert=args.litert)
        log.info("exported %s", path)
    else:
        from model.evaluate import evaluate_version

        metrics = evaluate_version(args.version_dir, args.csv, args.target, args.plot)
        log.info("metrics: %s", json.dumps(metrics.as_dict()))
        if args.plot:
            log.info("plot written to %s", args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
