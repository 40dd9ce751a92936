"""The examples in scripts/examples/: each runs, draws its figure and gets its result."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "examples"))

import autoencoder
import conv_autoencoder
import deeper_net
import function_approx
import gan
import logic_gates
import logistic_nine
import optimizer_comparison
import regression


def _png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:4] == b"\x89PNG"


def test_logistic_regression_nine_vs_not_nine(mnist, tmp_path):
    result = logistic_nine.main(["--out", str(tmp_path)])
    assert result["always_not_9_accuracy"] == pytest.approx(0.8991)
    # the issue asks for 97%; the optimum of logistic regression here is 96.7% (L-BFGS)
    assert result["accuracy"] >= 0.96
    assert result["precision_9"] > 0.85 and result["recall_9"] > 0.7
    assert _png(tmp_path / "logistic_nine.png") and (tmp_path / "results.json").is_file()


def test_one_hidden_layer_separates_nines(mnist, tmp_path):
    result = logistic_nine.main(["--out", str(tmp_path), "--hidden", "32"])
    assert result["accuracy"] >= 0.98


def test_regression_recovers_the_coefficients(tmp_path):
    result = regression.main(["--out", str(tmp_path)])
    for key, truth in regression.TRUE_LINEAR.items():
        assert result["linear"][key] == pytest.approx(truth, abs=0.1), key
    for key, truth in regression.TRUE_CUBIC.items():
        assert result["cubic"][key] == pytest.approx(truth, abs=0.15), key
    assert _png(tmp_path / "regression.png")


def test_logic_gates_get_all_four_corners(tmp_path):
    result = logic_gates.main(["--out", str(tmp_path)])
    for gate, truth in logic_gates.GATES.items():
        outputs = np.array(result[gate]["outputs"])
        np.testing.assert_array_equal(outputs >= 0.5, np.array(truth, dtype=bool))
        assert np.all(np.abs(outputs - truth) < 0.2), (gate, outputs)  # confidently right
        assert result[gate]["correct"] and result[gate]["starts"] <= 10
    assert result["AND"]["starts"] == result["OR"]["starts"] == 1  # no local minima there
    assert _png(tmp_path / "logic_gates.png")


def test_function_approximation_is_close(tmp_path):
    result = function_approx.main(["--out", str(tmp_path)])
    assert result["rms_error"] < 0.03  # f spans about [-0.25, 18]
    assert result["max_abs_error_from_0.05"] < 0.1
    assert result["max_abs_error"] < 0.3 and result["max_abs_error_at_x"] < 0.05  # the cusp
    assert _png(tmp_path / "function_approx.png")


@pytest.mark.slow
def test_deeper_net_with_the_worker_pool(mnist, tmp_path):
    result = deeper_net.main(["--out", str(tmp_path), "--workers", "2"])
    assert result["parameters"] == 515080
    assert result["test_accuracy"] >= 0.973
    assert _png(tmp_path / "deeper_net.png")


@pytest.mark.slow
def test_optimizer_comparison(mnist, tmp_path):
    result = optimizer_comparison.main(["--out", str(tmp_path)])
    table = pd.read_csv(tmp_path / "optimizers.csv")
    assert list(table["optimizer"]) == list(optimizer_comparison.LEARNING_RATES)
    assert (table["final_train_loss"] < table["first_batch_loss"] / 4).all()
    assert (table["test_accuracy"] > 0.9).all(), table
    assert set(result) == set(optimizer_comparison.LEARNING_RATES)
    assert _png(tmp_path / "optimizers.png")


@pytest.mark.slow
def test_autoencoder_reconstructs_through_32_numbers(mnist, tmp_path):
    result = autoencoder.main(["--out", str(tmp_path), "--epochs", "2"])
    # measured 80.8 after 5 epochs; the mean image scores about 2.5x worse
    assert result["test_reconstruction_loss"] < 0.6 * result["mean_image_loss"]
    assert result["mean_abs_pixel_error"] < 0.07
    assert _png(tmp_path / "autoencoder.png")


@pytest.mark.slow
def test_a_short_gan_run_neither_collapses_nor_lets_one_side_win(mnist, tmp_path):
    """Bounds (README): the discriminator tells real from generated images in 30-95% of
    cases (above: it has won and the generator learns nothing; far below: it has been
    broken), and the generated images differ from each other at least a quarter as much
    as real ones do (a collapsed generator draws one image: spread 0)."""
    result = gan.main(["--out", str(tmp_path), "--epochs", "3", "--images", "30000", "--seed", "1"])
    assert 0.3 <= result["discriminator_accuracy"] <= 0.95, result
    assert result["sample_spread"] >= 0.25 * result["real_spread"], result
    assert _png(tmp_path / "gan.png")


@pytest.mark.slow
def test_the_conv_autoencoder_reconstructs_through_32_numbers_and_reports_the_dense_one(
    mnist, tmp_path
):
    result = conv_autoencoder.main(["--out", str(tmp_path), "--epochs", "2"])
    # measured after 5 epochs: 84.0 (the dense autoencoder on the same run: 80.9)
    assert result["test_reconstruction_loss"] < 0.6 * result["mean_image_loss"]
    assert result["dense_test_reconstruction_loss"] < 0.6 * result["mean_image_loss"]
    assert result["code_size"] == 32
    assert _png(tmp_path / "conv_autoencoder.png")
