"""The main job runs end to end (a fast configuration) and reports what it claims."""
import json

import pytest

from equislt.cli import main


def test_demo_fast_path(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--target-epochs", "2", "--search-epochs", "2", "--ticket-channels", "12,24",
                 "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "target" in printed and "ticket" in printed and "equivariance error" in printed
    result = json.loads((out / "result.json").read_text())
    assert result["target_accuracy"] > 0.5
    assert result["ticket_accuracy"] > 0.2  # chance is 0.1; two epochs of score search only
    assert result["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert max(result["equivariance_error"].values()) < 1e-5
    assert (out / "ticket_masks.pt").exists()


def test_demo_rejects_bad_sparsity(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--sparsity", "1.5"])
    assert "fraction pruned" in capsys.readouterr().err
