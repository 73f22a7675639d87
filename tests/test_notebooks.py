"""The tutorial notebooks execute top to bottom (nbclient), plots included."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

FOLDER = Path(__file__).resolve().parents[1] / "notebooks"
# what each tutorial must print (and whether it draws a plot)
EXPECTED = {
    "01_supermask_swap_in.ipynb": (["ticket accuracy", "EquivarianceReport", "max |folded - ticket|: 0.0"], True),
    "02_construct_steerable_ticket.ipynb": (["certified sup error", "prediction agreement 1.0000",
                                             "reloaded identical: True", "EquivarianceReport"], True),
    "03_graph_networks.ipynb": (["2->2: 15 basis elements", "3->3: 203 basis elements", "invariance error",
                                 "MaskedPyGLinear"], False),
    "04_your_own_model.ipynb": (["search ticket accuracy", "escnn modules left after export: 0", "frozen",
                                 "constructed ticket: prediction agreement", "export identical: True",
                                 "files in ATLAS/: ['raw']"], False),
}


def test_every_notebook_is_checked():
    assert sorted(p.name for p in FOLDER.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_executes(name, tmp_path):
    notebook = nbformat.read(FOLDER / name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    strings, plot = EXPECTED[name]
    for expected in strings:
        assert expected in text, expected
    if plot:
        assert any("image/png" in o.get("data", {}) for o in outputs)
