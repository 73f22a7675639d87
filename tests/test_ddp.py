"""Data parallel search: ``torchrun --nproc_per_node 2`` on CPU (gloo) vs the same command in one process."""
import json
import os
import socket
import subprocess
import sys

import torch

from equislt import Ticket

CONFIG = {"model_kwargs": {"channels": [2, 4], "kernel_size": 3},
          "data_kwargs": {"size": 9, "train_limit": 192, "test_limit": 96},
          "epochs": 2, "batch_size": 32, "lr": 0.05, "optimizer": "sgd", "progress": False}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _search(tmp_path, name, nproc, **changes):
    out = tmp_path / name
    config = tmp_path / f"{name}.json"
    config.write_text(json.dumps({**CONFIG, **changes, "out": str(out)}))
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                 "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "equislt.cli"]
                if nproc > 1 else [sys.executable, "-m", "equislt.cli"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EQUISLT_BACKEND": "gloo"}
    done = subprocess.run(launcher + ["search", "--config", str(config)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads((out / "result.json").read_text()), out


def _agreement(a, b):
    same = sum(int((a[p][n] == b[p][n]).sum()) for p in a for n in a[p])
    return same / sum(a[p][n].numel() for p in a for n in a[p])


def test_two_processes_end_with_identical_masks_close_to_one_process(tmp_path):
    two, out2 = _search(tmp_path, "ddp", 2)
    one, out1 = _search(tmp_path, "single", 1)
    assert two["world_size"] == 2 and one["world_size"] == 1
    # every rank ends with bitwise the same masks (digest gathered from each process)
    assert two["ranks_agree"] and len(two["rank_mask_digests"]) == 2
    assert len(set(two["rank_mask_digests"])) == 1
    # the union of the ranks' batches is the single-process batch: same gradient up to rounding and
    # batch-norm statistics (per process in train mode), so nearly the same masks and accuracy
    a = Ticket.load(out1 / "ticket.pt").masks()
    b = Ticket.load(out2 / "ticket.pt").masks()
    assert _agreement(a, b) > 0.97
    assert abs(two["test_accuracy"] - one["test_accuracy"]) <= 0.05
    assert two["sparsity"] == one["sparsity"]
    # the scores themselves stay close (SGD: the update is linear in the averaged gradient)
    s1 = torch.load(out1 / "checkpoint.pt", weights_only=False)["state"]
    s2 = torch.load(out2 / "checkpoint.pt", weights_only=False)["state"]
    for key in (k for k in s1 if k.endswith("_scores")):
        scale = s1[key].abs().max()
        assert (s1[key] - s2[key]).abs().max() <= 0.05 * scale, key
