"""The device option checked on the best device present, side by side with the CPU: a construction (the exact
Subset-Sum solver's torch backend on the device vs numba on the CPU: the masks must be identical) and a supermask
search (float32 and bfloat16 autocast on the device vs float32 on the CPU: accuracies close).

    .venv/bin/python benchmarks/device_check.py
        # writes benchmarks/results/device_check_<device type>.json; run it on a machine with a GPU and commit
        # the JSON, which names the device

On a machine without an accelerator it compares the CPU with itself (and says so in the JSON).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from equislt._device import resolve_device


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or device.type


def construction(device: torch.device, tol: float) -> dict:
    from equislt.construct import construct
    from equislt.data import rotated_digits, rotated_digits_loaders
    from equislt.models import steerable_cnn, train_classifier

    torch.manual_seed(0)
    train, _ = rotated_digits_loaders(batch_size=64, seed=0)
    target = steerable_cnn("c4", channels=(8, 16))
    train_classifier(target, train, epochs=2, lr=3e-3, progress=False)
    inputs = rotated_digits("test").tensors[0][:256]
    runs = {}
    for where in ("cpu", device):
        start = time.perf_counter()
        ticket = construct(target, inputs, tol=tol, seed=0, input_nonnegative=True, device=where, progress=False)
        runs[str(where)] = (time.perf_counter() - start, ticket)
    (cpu_s, cpu), (dev_s, dev) = runs["cpu"], runs[str(device)]
    masks_a, masks_b = cpu.masks(), dev.masks()
    identical = masks_a.keys() == masks_b.keys() and all(
        torch.equal(masks_a[p][n], masks_b[p][n]) for p in masks_a for n in masks_a[p])
    agreement = {"cpu": cpu.certificate.prediction_agreement, str(device): dev.certificate.prediction_agreement}
    return {"target": "C4 steerable CNN (8, 16), 2 epochs", "tol": tol, "masks_identical": identical,
            "seconds": {"cpu": cpu_s, str(device): dev_s}, "agreement": agreement}


def search(device: torch.device, epochs: int) -> dict:
    from equislt.search import SearchConfig, run_search

    base = dict(model="steerable_cnn", model_kwargs={"channels": [12, 24]}, epochs=epochs, batch_size=64,
                progress=False, out=None, seed=0)
    runs = {}
    for name, changes in (("cpu", {"device": "cpu"}), (str(device), {"device": str(device)}),
                          (f"{device} bf16", {"device": str(device), "amp": "bf16"})):
        start = time.perf_counter()
        result = run_search(SearchConfig(**base, **changes), log=lambda *_: None)
        runs[name] = {"test_accuracy": result["test_accuracy"], "seconds": time.perf_counter() - start,
                      "mask_digest": result["mask_digest"]}
    return {"model": "steerable_cnn (12, 24), sparsity 0.5", "epochs": epochs, "runs": runs,
            "accuracy_difference": abs(runs["cpu"]["test_accuracy"] - runs[str(device)]["test_accuracy"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    note = None if device.type != "cpu" else "no accelerator here: the CPU is compared with itself"
    result = {"device": str(device), "device_name": _device_name(device), "torch": torch.__version__, "note": note,
              "construction": construction(device, args.tol), "search": search(device, args.epochs)}
    out = Path(args.out or Path(__file__).parent / "results" / f"device_check_{device.type}.json")
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
