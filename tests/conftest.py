"""Shared test settings: where the real corpora are (tests that need them skip when they are absent)."""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("S2S_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture
def shared_data() -> Path:
    """The folder of real corpora (../shared/data); skips the test where it is absent."""
    if not (SHARED_DATA / "multi30k").is_dir():
        pytest.skip(f"real corpora absent ({SHARED_DATA}); set S2S_DATA")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Tiny models: a second intra-op thread only adds synchronisation (and stalls on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def trainers_built(monkeypatch):
    """`trainers_built(cls=Trainer)`: training sessions build their trainer as `cls`, a Trainer subclass;
    the list it returns holds each trainer built, in order, to look at after `train()`."""
    from workbench.engine import session

    def build_as(cls=session.Trainer):
        built = []

        class Kept(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                built.append(self)

        monkeypatch.setattr(session, "Trainer", Kept)
        return built

    return build_as


@pytest.fixture
def tf32_flags():
    """Restores torch's process-wide TF32 flags, which resolving a CUDA device sets."""
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
