"""Command line: ``equislt demo``, ``equislt construct`` and ``equislt search``.

``equislt search`` runs in one process, or data parallel under ``torchrun``:
``torchrun --nproc_per_node 2 -m equislt.cli search --config run.json``.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

__all__ = ["main"]


def _channels(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"channels must be positive, got {text!r}")
    return values


def _sparsity(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"sparsity is the fraction pruned, in [0, 1); got {value}")
    return value


def _tol(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"tol must be in (0, 1); got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .demo import DemoConfig

    parser = argparse.ArgumentParser(prog="equislt", description="Strong lottery tickets in equivariant networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = DemoConfig()
    demo = sub.add_parser("demo", help="C4-steerable target vs its strong lottery ticket on rotated digits")
    demo.add_argument("--method", choices=("construct", "search"), default=d.method,
                      help="construct: provable Subset-Sum pruning (default); search: supermask training")
    demo.add_argument("--seed", type=int, default=d.seed)
    demo.add_argument("--target-channels", type=_channels, default=d.target_channels,
                      help="regular fields per stage of the trained target (default: %(default)s)")
    demo.add_argument("--target-epochs", type=int, default=d.target_epochs)
    demo.add_argument("--tol", type=_tol, default=d.tol, help="construct: per-coefficient tolerance")
    demo.add_argument("--ticket-channels", type=_channels, default=d.ticket_channels,
                      help="search: regular fields per stage of the random network (default: %(default)s)")
    demo.add_argument("--search-epochs", type=int, default=d.search_epochs)
    demo.add_argument("--sparsity", type=_sparsity, default=d.sparsity, help="search: fraction pruned")
    demo.add_argument("--out", default=d.out, help="directory for target.pt, the ticket and result.json")
    demo.add_argument("--data", default=None,
                      help="your images instead of the bundled digits: a directory of MNIST-style IDX files "
                           "(train-/t10k-images-idx3-ubyte, train-/t10k-labels-idx1-ubyte, optionally .gz), a "
                           "class-per-folder tree (root/<class>/*.png, or root/train/ and root/test/) or a .npz "
                           "(x, y or x_train, y_train, x_test, y_test)")
    demo.add_argument("--train-limit", type=int, default=None, help="at most this many training images")
    demo.add_argument("--test-limit", type=int, default=None, help="at most this many held-out images")
    demo.add_argument("--data-limit", type=int, default=None, help=argparse.SUPPRESS)  # before 0.2: both limits
    demo.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:N or mps (default: %(default)s)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")

    con = sub.add_parser("construct", help="construct a ticket for a trained target")
    con.add_argument("--target", required=True,
                     help="a checkpoint written by equislt.models.save_model (e.g. runs/demo/target.pt), or your "
                          "model's factory 'package.module:factory' (with --weights)")
    con.add_argument("--weights", help="with a factory --target: the trained state_dict (torch.save of "
                                       "model.eval().state_dict())")
    con.add_argument("--model-kwargs", type=_json_dict, default={},
                     help="with a factory --target: its arguments as JSON")
    con.add_argument("--trust-target", action="store_true",
                     help="let a checkpoint import the factory it names, or read one of an earlier release holding "
                          "a pickled module (runs code: only for files you wrote)")
    con.add_argument("--inputs", default=None,
                     help="sample inputs: a .pt file holding a tensor; 'digits' (held-out rotated digits at the "
                          "target's input size, the default for equislt's image models)")
    con.add_argument("--tol", type=_tol, default=1e-4, help="per-coefficient Subset-Sum tolerance")
    con.add_argument("--eps", type=float, default=None, help="fail unless the certified bound is below eps")
    con.add_argument("--n", type=int, default=None, help="summands per pool (default from --tol)")
    con.add_argument("--seed", type=int, default=0)
    con.add_argument("--policy", choices=("widen", "report", "raise"), default="widen")
    con.add_argument("--fewest", action="store_true", help="keep the fewest coefficients within tol")
    con.add_argument("--sparse", type=float, default=None, metavar="AGREEMENT",
                     help="construct_sparse: the fewest kept coefficients whose predictions agree with the target's "
                          "on at least this fraction of --inputs (a tolerance per layer; --tol and --fewest unused)")
    con.add_argument("--method", choices=("subset_sum", "malach", "malach_neurons"), default="subset_sum",
                     help="subset_sum (Pensia/Ferbach, default), malach (one random product per coefficient) or "
                          "malach_neurons (whole hidden fields kept or dropped; no certified bound)")
    con.add_argument("--feedback", action=argparse.BooleanOptionalAction, default=None,
                     help="error feedback: fold each residual into the coefficients still to solve so residuals "
                          "cancel in the output (default: on with --sparse, off otherwise)")
    con.add_argument("--prune-silent", action=argparse.BooleanOptionalAction, default=None,
                     help="with feedback, keep nothing of features whose output is zero on every traced input "
                          "(default: on with --sparse and feedback, off otherwise)")
    con.add_argument("--input-nonnegative", action="store_true", help="inputs are >= 0 (e.g. images)")
    con.add_argument("--device", default="cpu", help="where the exact Subset-Sum solver runs: cpu (numba, default), "
                                                      "auto, cuda, cuda:N or mps (its torch backend)")
    con.add_argument("--out", default="ticket.pt")
    con.add_argument("--no-progress", action="store_true")

    _add_search(sub)
    return parser


def _json_dict(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({err})")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


# (flag, SearchConfig field, argparse options); every flag defaults to None = "not given": the config file's
# value (or the SearchConfig default) is used, a given flag overrides it
_SEARCH_FLAGS = [
    ("--model", "model", dict(help="steerable_cnn, plain_cnn, gin, gcn, ign, a name registered with "
                                   "equislt.register_model, or your factory 'package.module:factory' (the "
                                   "current directory is searched)")),
    ("--model-kwargs", "model_kwargs",
     dict(type=_json_dict, help='factory arguments as JSON, e.g. \'{"channels": [8, 16]}\'')),
    ("--data", "data", dict(help="bundled data set: rotated_digits, graph_atlas, karate_club")),
    ("--data-kwargs", "data_kwargs", dict(type=_json_dict, help="data options as JSON: train_limit, test_limit, "
                                                                "rotations, test_fraction, seed (trust_pickles)")),
    ("--data-path", "data_path", dict(help="your own data instead of --data (its kind is read from the files): "
                                           "images (.npz, a directory of IDX files or of class folders), graphs "
                                           "(a torch.save-d list of PyG Data, a TUDataset directory), one graph for "
                                           "node classification (a Data file with train/test masks, a Planetoid "
                                           "directory)")),
    ("--sparsity", "sparsity", dict(type=_sparsity, help="fraction of random coefficients pruned")),
    ("--scope", "scope", dict(choices=("layer", "global"), help="per-layer or global top-k")),
    ("--ramp", "ramp", dict(type=float, help="fraction of steps over which sparsity rises to its target")),
    ("--ramp-start", "ramp_start", dict(type=float, help="sparsity at step 0 of the ramp")),
    ("--ramp-shape", "ramp_shape", dict(choices=("linear", "cubic"))),
    ("--weight-init", "weight_init", dict(choices=("signed_constant", "normal", "uniform"))),
    ("--include", "include", dict(choices=("coefficients", "all"),
                                  help="mask the coefficients of known layers (default; other parameters stay dense "
                                       "and frozen) or every parameter")),
    ("--epochs", "epochs", dict(type=int)),
    ("--batch-size", "batch_size", dict(type=int, help="global batch (split over torchrun processes)")),
    ("--lr", "lr", dict(type=float)),
    ("--optimizer", "optimizer", dict(choices=("sgd", "adam"))),
    ("--momentum", "momentum", dict(type=float)),
    ("--weight-decay", "weight_decay", dict(type=float)),
    ("--seed", "seed", dict(type=int)),
    ("--out", "out", dict(help="run directory (metrics.jsonl, checkpoint.pt, ticket.pt, result.json, plot)")),
    ("--checkpoint-every", "checkpoint_every", dict(type=int, help="steps between checkpoints (0: per epoch)")),
    ("--log-every", "log_every", dict(type=int, help="steps between metric lines")),
    ("--device", "device", dict(help="auto (a CUDA GPU, then MPS, else the CPU), cpu, cuda, cuda:N or mps")),
    ("--amp", "amp", dict(choices=("bf16",), help="bfloat16 autocast for the training forward passes")),
]
_SEARCH_SWITCHES = [  # (flag, field, value set when given)
    ("--first-layer-dense", "first_layer_dense", True),
    ("--last-layer-dense", "last_layer_dense", True),
    ("--biprop", "biprop", True),
    ("--no-cosine", "cosine", False),
    ("--no-recalibrate-bn", "recalibrate_bn", False),
    ("--no-resume", "resume", False),
    ("--no-progress", "progress", False),
]


def _add_search(sub) -> None:
    sea = sub.add_parser("search", help="supermask search (edge-popup) for a ticket in a random network",
                         description="Supermask search. Settings come from --config (JSON; YAML if PyYAML is "
                                     "installed), then flags. Under torchrun it runs data parallel.")
    sea.add_argument("--config", help="SearchConfig fields as a JSON (or YAML) mapping")
    for flag, field, options in _SEARCH_FLAGS:
        sea.add_argument(flag, dest=field, default=None, **options)
    for flag, field, value in _SEARCH_SWITCHES:
        sea.add_argument(flag, dest=field, action="store_const", const=value, default=None)


def _search(args) -> None:
    from .search import SearchConfig, load_config, run_search

    try:
        config = load_config(args.config) if args.config else SearchConfig()
        fields = [f for _, f, _ in _SEARCH_FLAGS] + [f for _, f, _ in _SEARCH_SWITCHES]
        overrides = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
        config = config.replace(**overrides)
        run_search(config)
    except (OSError, ValueError) as err:
        raise SystemExit(f"equislt search: {err}")


_DIGIT_MODELS = ("equislt.steerable_cnn", "equislt.plain_cnn")  # image models with a bundled data set


def _inputs(spec: Optional[str], target):
    import torch

    from ._files import load_plain
    from .models import Architecture

    architecture = Architecture.of(target)
    if spec in (None, "digits"):
        if architecture is None or architecture.factory not in _DIGIT_MODELS:
            raise ValueError("--inputs is required: a .pt file holding a tensor of sample inputs for this model "
                             "(only equislt's image models have a bundled data set)")
        from .data import rotated_digits

        return rotated_digits("test", size=int(architecture.kwargs.get("input_size", 17))).tensors[0]
    value = load_plain(spec, "--inputs")
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"--inputs {spec} must hold a tensor, got {type(value).__name__}")
    return value


def _target(args):
    """The trained target: a checkpoint, or a factory built with ``--model-kwargs`` and loaded with ``--weights``."""
    from pathlib import Path

    from .models import load_model, load_weights

    if ":" in args.target and not Path(args.target).exists():
        if args.weights is None:
            raise ValueError(f"--target {args.target} is a factory: give its trained state_dict with --weights")
        return load_weights(args.target, args.model_kwargs, args.weights)
    if args.weights is not None:
        raise ValueError("--weights goes with a factory --target 'package.module:factory'; a checkpoint holds its "
                         "weights")
    return load_model(args.target, trust=args.trust_target)


def _construct(args) -> None:
    from .construct import construct, construct_sparse

    try:
        target = _target(args)
        inputs = _inputs(args.inputs, target)
        if args.sparse is not None:
            if args.method != "subset_sum":
                raise ValueError(f"--sparse uses Subset-Sum with the fewest elements, not --method {args.method}")
            options = {} if args.n is None else {"n": args.n}
            if args.feedback is not None:
                options["feedback"] = args.feedback
            if args.prune_silent is not None:
                options["prune_silent"] = args.prune_silent
            ticket = construct_sparse(target, inputs, agreement=args.sparse, device=args.device, seed=args.seed,
                                      policy=args.policy, input_nonnegative=args.input_nonnegative,
                                      progress=not args.no_progress, log=print, **options)
            print(ticket.certificate.summary())
        else:
            ticket = construct(target, inputs, tol=args.tol, device=args.device, eps=args.eps, n=args.n,
                               seed=args.seed, policy=args.policy, fewest=args.fewest, method=args.method,
                               feedback=bool(args.feedback), prune_silent=bool(args.prune_silent),
                               input_nonnegative=args.input_nonnegative,
                               progress=not args.no_progress, log=print)
        ticket.save(args.out)
    except (OSError, ValueError) as err:
        raise SystemExit(f"equislt construct: {err}")
    print(f"saved the ticket to {args.out} (sparsity {ticket.sparsity():.3f})")


def _either(value, fallback):
    return fallback if value is None else value


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _run(args)
    except KeyboardInterrupt:
        again = "; rerun the same command to resume" if args.command == "search" else ""
        print(f"equislt {args.command}: interrupted{again}", file=sys.stderr)
        return 130
    return 0


def _run(args) -> None:
    if args.command == "demo":
        from .demo import DemoConfig, run_demo

        try:
            run_demo(DemoConfig(method=args.method, seed=args.seed, target_channels=args.target_channels,
                                target_epochs=args.target_epochs, tol=args.tol, ticket_channels=args.ticket_channels,
                                search_epochs=args.search_epochs, sparsity=args.sparsity, out=args.out,
                                progress=not args.no_progress, data=args.data, device=args.device,
                                train_limit=_either(args.train_limit, args.data_limit),
                                test_limit=_either(args.test_limit, args.data_limit)))
        except ValueError as err:
            if args.data is None:
                raise
            raise SystemExit(f"equislt demo: {err}")
    elif args.command == "construct":
        _construct(args)
    elif args.command == "search":
        _search(args)


if __name__ == "__main__":
    sys.exit(main())
