"""A broken escnn (numpy 2 hides the failure of its submodules) gives an error that says what to do."""
import sys
import types

import pytest

from equislt._compat import import_escnn


def test_broken_escnn_is_reported_with_the_fix(monkeypatch):
    broken = types.ModuleType("escnn")  # what `import escnn` gives under numpy 2: no nn/gspaces/group
    monkeypatch.setitem(sys.modules, "escnn", broken)
    with pytest.raises(ImportError, match=r"escnn\.nn.*numpy<2"):
        import_escnn()


def test_working_escnn_is_returned():
    escnn = import_escnn()
    assert hasattr(escnn, "nn") and hasattr(escnn, "gspaces")


def test_core_imports_without_escnn(monkeypatch):
    """equislt's core (blocks, masks, torch layers) does not import escnn."""
    import subprocess

    code = ("import sys; import equislt, torch; from equislt.nn import supermask; "
            "supermask(torch.nn.Sequential(torch.nn.Linear(3, 2)), 0.5); "
            "assert 'escnn' not in sys.modules, 'escnn was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
