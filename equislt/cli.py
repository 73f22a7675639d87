"""Command line: ``equislt demo``."""
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


def build_parser() -> argparse.ArgumentParser:
    from .demo import DemoConfig

    parser = argparse.ArgumentParser(prog="equislt", description="Strong lottery tickets in equivariant networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="C4-steerable target vs supermask ticket on rotated digits (offline)")
    d = DemoConfig()
    demo.add_argument("--seed", type=int, default=d.seed)
    demo.add_argument("--target-channels", type=_channels, default=d.target_channels,
                      help="regular fields per stage of the trained target (default: %(default)s)")
    demo.add_argument("--ticket-channels", type=_channels, default=d.ticket_channels,
                      help="regular fields per stage of the random network (default: %(default)s)")
    demo.add_argument("--target-epochs", type=int, default=d.target_epochs)
    demo.add_argument("--search-epochs", type=int, default=d.search_epochs)
    demo.add_argument("--sparsity", type=_sparsity, default=d.sparsity, help="fraction of coefficients pruned")
    demo.add_argument("--out", default=d.out, help="directory for the ticket's masks and result.json")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import DemoConfig, run_demo

        run_demo(DemoConfig(seed=args.seed, target_channels=args.target_channels,
                            ticket_channels=args.ticket_channels, target_epochs=args.target_epochs,
                            search_epochs=args.search_epochs, sparsity=args.sparsity, out=args.out,
                            progress=not args.no_progress))
    return 0


if __name__ == "__main__":
    sys.exit(main())
