"""The README's quick start runs as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs(tmp_path, monkeypatch):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[0], "README quick start", "exec"), namespace)
    assert (tmp_path / "ticket_masks.pt").exists()
    plain = namespace["plain"]
    assert type(plain).__module__.startswith("torch.nn")


def test_results_block_is_generated_from_the_committed_json():
    """Every number in the README's results block comes from benchmarks/results/*.json via report.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("report", README.parent / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    text = README.read_text()
    block = text.split(report.START, 1)[1].split(report.END, 1)[0]
    assert block.strip() == report.report().strip(), "run: python benchmarks/report.py --write"
