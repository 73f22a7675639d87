"""The main job and the CLI run end to end (fast configurations) and report what they claim."""
import json

import pytest
import torch

from equislt.cli import main
from equislt import Ticket


def test_demo_construct_fast_path(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--target-epochs", "2", "--target-channels", "4,8", "--tol", "1e-4", "--no-progress",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pruned by Subset-Sum" in printed and "equivariance error" in printed and "certified" in printed
    result = json.loads((out / "result.json").read_text())
    assert result["target_accuracy"] > 0.3  # chance is 0.1
    assert result["prediction_agreement"] >= 0.99
    assert abs(result["ticket_accuracy"] - result["target_accuracy"]) <= 0.01
    assert result["max_output_error"] <= result["certificate"]["bound"]
    # relative to the largest logit, float32 sums over thousands of random products: rounding level
    assert max(result["equivariance_error"].values()) < 1e-4
    ticket = Ticket.load(out / "ticket.pt")  # regenerated from seed + masks + recorded architecture
    assert abs(ticket.sparsity() - result["sparsity"]) < 1e-9

    # equislt construct on the saved target reproduces the demo's ticket (same seed, same tolerance)
    assert main(["construct", "--target", str(out / "target.pt"), "--tol", "1e-4", "--input-nonnegative",
                 "--no-progress", "--out", str(tmp_path / "again.pt")]) == 0
    again = Ticket.load(tmp_path / "again.pt")
    x = torch.rand(4, 1, 17, 17)
    with torch.no_grad():
        assert torch.equal(again.network(x), ticket.network(x))
    # Malach et al.'s single products through the same command
    assert main(["construct", "--target", str(out / "target.pt"), "--tol", "1e-3", "--method", "malach",
                 "--input-nonnegative", "--no-progress", "--out", str(tmp_path / "malach.pt")]) == 0
    malach = Ticket.load(tmp_path / "malach.pt").certificate
    assert malach.method == "malach" and malach.rows_over_tol == 0 and malach.prediction_agreement >= 0.9
    # a sparse ticket at an agreement goal
    assert main(["construct", "--target", str(out / "target.pt"), "--sparse", "0.99", "--n", "16",
                 "--input-nonnegative", "--no-progress", "--out", str(tmp_path / "sparse.pt")]) == 0
    sparse = Ticket.load(tmp_path / "sparse.pt").certificate
    assert sparse.prediction_agreement >= 0.99 and sparse.tol is None and all(layer.tol for layer in sparse.layers)
    assert sparse.kept_coefficients < Ticket.load(tmp_path / "again.pt").certificate.kept_coefficients
    assert sparse.feedback and not again.certificate.feedback  # error feedback: on for --sparse, else asked for
    assert sparse.prune_silent and not again.certificate.prune_silent  # so are silent features
    assert main(["construct", "--target", str(out / "target.pt"), "--tol", "1e-3", "--feedback", "--prune-silent",
                 "--input-nonnegative", "--no-progress", "--out", str(tmp_path / "fed.pt")]) == 0
    fed = Ticket.load(tmp_path / "fed.pt").certificate
    assert fed.feedback and fed.prune_silent
    with pytest.raises(SystemExit, match="pass feedback=True"):
        main(["construct", "--target", str(out / "target.pt"), "--tol", "1e-3", "--prune-silent",
              "--input-nonnegative", "--no-progress", "--out", str(tmp_path / "never.pt")])


def test_demo_search_fast_path(tmp_path, capsys):
    out = tmp_path / "search"
    assert main(["demo", "--method", "search", "--target-epochs", "2", "--search-epochs", "2",
                 "--ticket-channels", "12,24", "--no-progress", "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["ticket_accuracy"] > 0.2  # chance is 0.1; two epochs of score search only
    assert result["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert max(result["equivariance_error"].values()) < 1e-5
    ticket = Ticket.load(out / "ticket.pt")  # the same artifact as the construction's, method "search"
    assert ticket.method == "search" and abs(ticket.sparsity() - result["sparsity"]) < 1e-9
    x = torch.rand(8, 1, 17, 17)
    with torch.no_grad():
        assert torch.allclose(ticket.export()(x), ticket(x), atol=1e-5)


def test_bad_arguments_are_explained(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["demo", "--sparsity", "1.5"])
    assert "fraction pruned" in capsys.readouterr().err
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": 1}, bogus)
    with pytest.raises(SystemExit, match="not an equislt model checkpoint"):
        main(["construct", "--target", str(bogus), "--no-progress"])


def test_demo_on_your_own_idx_images(tmp_path, capsys, idx_digits):
    """The user-data path: a directory of MNIST-style IDX files (here: the bundled digits at 16x16)."""
    folder = idx_digits(tmp_path / "mine")
    out = tmp_path / "run"
    assert main(["demo", "--data", str(folder), "--target-epochs", "2", "--target-channels", "4,8", "--tol", "1e-3",
                 "--no-progress", "--out", str(out)]) == 0
    assert "IDX" in capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert result["target_accuracy"] > 0.3 and result["prediction_agreement"] >= 0.98

    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    (folder / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(SystemExit, match="not an IDX file"):
        main(["demo", "--data", str(folder), "--no-progress", "--out", str(out)])
    (folder / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(SystemExit, match="missing t10k-images-idx3-ubyte"):
        main(["demo", "--data", str(folder), "--no-progress", "--out", str(out)])
