"""The worker pool from a Jupyter notebook cell, run by a real kernel (nbclient)."""

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install nbclient ipykernel")
nbclient = pytest.importorskip("nbclient", reason="pip install nbclient ipykernel")
pytest.importorskip("ipykernel", reason="pip install nbclient ipykernel")

CELLS = [
    """
import numpy as np
from nodenet import Layer, Model, fit

rng = np.random.default_rng(0)
x, y = rng.normal(size=(400, 8)), rng.integers(0, 3, 400)

def trained(workers):
    model = Model(8, "cross_entropy", [Layer(6, "relu"), Layer(3, "softmax")])
    model.construct(1, dtype=np.float64)
    history = fit(model, x, y, epochs=2, batch_size=40, workers=workers, progress=True)
    return model, history
""",
    """
pooled, history = trained(2)
alone, _ = trained(0)
np.testing.assert_allclose(pooled.weights, alone.weights, rtol=1e-9, atol=1e-12)
print("workers", history.worker_stats["worker"].tolist())
""",
]


@pytest.mark.timeout(120)
def test_the_pool_trains_from_a_notebook_cell(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    client = nbclient.NotebookClient(
        notebook, timeout=90, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    outputs = notebook.cells[1].outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "workers [0, 1]" in text, outputs
    assert not [o for o in outputs if o.output_type == "error"]
