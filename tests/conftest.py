import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matmuls (graph layers): thread start-up dominates, so run the module on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def idx_digits():
    """Writes the bundled digits at ``side``x``side`` as a directory of MNIST-style IDX files (train: 1200 images,
    test: 597, the test images gzipped) and returns the directory."""
    from sklearn.datasets import load_digits

    from equislt.data import write_idx

    def write(folder, side=16):
        digits = load_digits()
        images = torch.nn.functional.interpolate(torch.tensor(digits.images[:, None] * 16.0), size=(side, side),
                                                 mode="bilinear").clamp(0, 255)[:, 0].numpy()
        folder.mkdir(exist_ok=True)
        write_idx(folder / "train-images-idx3-ubyte", images[:1200])
        write_idx(folder / "train-labels-idx1-ubyte", digits.target[:1200])
        write_idx(folder / "t10k-images-idx3-ubyte.gz", images[1200:])
        write_idx(folder / "t10k-labels-idx1-ubyte", digits.target[1200:])
        return folder

    return write


@pytest.fixture
def module_on_disk(tmp_path, monkeypatch):
    """``write(source, stem)`` writes a user's module ``<stem>_<n>.py`` (a fresh name per test) into the test's
    directory, which becomes the current one, and returns its name (forgotten again after the test)."""
    import sys

    names = []

    def write(source: str, stem: str) -> str:
        name = f"{stem}_{abs(hash(str(tmp_path))) % 10**8}"
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)
