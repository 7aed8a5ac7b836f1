"""Shared fixtures: the location of the shared data files, with clean skips."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(name: str) -> Path:
    """Path to ``../shared/data/<name>``; skip the calling test with a message if absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared data file {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The shared data directory; skips the test if it does not exist."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data directory {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests use small tensors: one intra-op thread avoids oversubscribing small CI machines."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _back_to_one_torch_thread():
    """A test may set its own thread count (a CLI's ``--threads``): the next one starts at one."""
    yield
    import torch

    torch.set_num_threads(1)


@pytest.fixture(params=["native", "portable"])
def kernel_arch(request):
    """Runs a test against both builds of the C sampling kernel: ``native`` (this CPU's
    vector width, bfloat16 dot products where it has them) and ``portable`` (the compiler's
    baseline target), so every machine tests the code path the others would take."""
    from textgan_envs import native_sampling

    old = native_sampling.set_native_arch(request.param)
    if not native_sampling.native_sampling_available():
        native_sampling.set_native_arch(old)
        pytest.skip(f"the {request.param} build of the C sampling kernel could not be built here")
    yield request.param
    native_sampling.set_native_arch(old)


@pytest.fixture
def projection_path_on():
    """The projection sampling path switched on, whatever ``TEXTGAN_PROJECTION_SAMPLING``
    the test run was started with."""
    from textgan_envs import projection_sampling

    old = projection_sampling.set_projection_sampling(True)
    yield
    projection_sampling.set_projection_sampling(old)


@pytest.fixture(params=["aten", "onednn"])
def gemm_library(request, monkeypatch):
    """Runs a test with the discriminator's float32 training GEMMs through PyTorch's ``addmm``
    and through oneDNN (``TEXTGAN_CPU_GEMM``), whichever of them this CPU's default picks."""
    from textgan_envs.discriminators.cpu_gemm import GEMM_LIBRARY_ENV, onednn_linear_available

    if request.param == "onednn" and not onednn_linear_available():
        pytest.skip("this PyTorch build cannot run float32 linear layers through oneDNN")
    monkeypatch.setenv(GEMM_LIBRARY_ENV, request.param)
    return request.param
