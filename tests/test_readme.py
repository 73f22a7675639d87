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
