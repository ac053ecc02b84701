"""notebooks/walkthrough.ipynb runs top to bottom against the real local stack (nbclient): the
pipeline in local mode, the registry, approval and deployment to a real endpoint, predictions
through boto3 and the SageMaker Predictor, drifted traffic, and the monitoring job's
violations. Its `parameters` cell is replaced to keep the run short."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from local_mlops.config import Settings
from local_mlops.devenv import dockerhost
from local_mlops.serving import daemon
from local_mlops.serving.fleet import ENDPOINT_LABEL, free_port

pytestmark = pytest.mark.docker
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "walkthrough.ipynb"
ENDPOINT = "notebook-endpoint"
PARAMETERS = 'EPOCHS = 1\nBACKBONE = "mobilenet_v3_small"\nDRIFTED_REQUESTS = 20\n'


@pytest.fixture
def stack(
    runtime_image: str,
    serving_image: str,
    s3: tuple[Settings, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, str]]:
    """The kernel's environment: the session's emulator, its own bucket, state dir and router."""
    base, url = s3
    env = {
        "LOCAL_MLOPS_S3_ENDPOINT": url,
        "LOCAL_MLOPS_BUCKET": "notebook-it",
        "LOCAL_MLOPS_STATE_DIR": str(tmp_path / "state"),
        "LOCAL_MLOPS_ROUTER_PORT": str(free_port()),
        "LOCAL_MLOPS_ENDPOINT_NAME": ENDPOINT,
        "LOCAL_MLOPS_DEPLOYMENT_BAKE_SECONDS": "1",
        "LOCAL_MLOPS_ENDPOINT_PING_TIMEOUT": "240",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env
    for container in dockerhost.docker_client().containers.list(
        all=True, filters={"label": f"{ENDPOINT_LABEL}={ENDPOINT}"}
    ):
        container.remove(force=True)
    from local_mlops.config import load_settings

    daemon.stop_router(load_settings())


def test_the_walkthrough_runs_top_to_bottom(stack: dict[str, str], tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    [parameters] = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = PARAMETERS
    client = NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on a failure
    outputs = "\n".join(
        out.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    assert "Succeeded" in outputs and "test accuracy:" in outputs
    assert "RegisterModel" in outputs  # the definition was shown
    assert "-> predicted" in outputs and "Predictor:" in outputs
    assert "captured records written:" in outputs
    assert "violation(s); report: s3://notebook-it/monitoring/" in outputs
    assert f"endpoint {ENDPOINT}" in outputs  # deleted at the end
