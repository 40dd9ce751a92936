"""Optimizers: a hand-computed step on a 3-parameter problem, and each one learning."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nodenet import SGD, Adagrad, Adam, AdamW, Momentum, Nesterov, RMSProp, fit, kernels
from nodenet.optimizers import get_optimizer, optimizer_settings
from nodenet.predict import evaluate
from tests.conftest import mlp

G_W = np.array([0.1, -0.2])
G_B = np.array([0.3])

# two steps with the same gradient: (optimizer, weights after 1, biases after 1, after 2)
HAND = [
    (SGD(lr=0.1), [0.99, -1.98], [0.47], [0.98, -1.96], [0.44]),
    # v1 = g, p -= 0.1 g; v2 = 0.9 g + g = 1.9 g, p -= 0.19 g
    (Momentum(lr=0.1, momentum=0.9), [0.99, -1.98], [0.47], [0.971, -1.942], [0.413]),
    # p -= 0.1 (g + 0.9 * 1 g) = 0.19 g; then 0.1 (g + 0.9 * 1.9 g) = 0.271 g
    (Nesterov(lr=0.1, momentum=0.9), [0.981, -1.962], [0.443], [0.9539, -1.9078], [0.3617]),
    # s1 = 0.1 g^2: step 0.01 / sqrt(0.1); s2 = 0.19 g^2: step 0.01 / sqrt(0.19)
    (
        RMSProp(lr=0.01, rho=0.9),
        [1 - 0.01 / np.sqrt(0.1), -2 + 0.01 / np.sqrt(0.1)],
        [0.5 - 0.01 / np.sqrt(0.1)],
        [
            1 - 0.01 / np.sqrt(0.1) - 0.01 / np.sqrt(0.19),
            -2 + 0.01 / np.sqrt(0.1) + 0.01 / np.sqrt(0.19),
        ],
        [0.5 - 0.01 / np.sqrt(0.1) - 0.01 / np.sqrt(0.19)],
    ),
    # s1 = g^2: step 0.1; s2 = 2 g^2: step 0.1 / sqrt(2)
    (
        Adagrad(lr=0.1),
        [0.9, -1.9],
        [0.4],
        [0.9 - 0.1 / np.sqrt(2), -1.9 + 0.1 / np.sqrt(2)],
        [0.4 - 0.1 / np.sqrt(2)],
    ),
    # bias-corrected m_hat = g and v_hat = g^2 at every step: a step of lr * sign(g)
    (Adam(lr=0.01), [0.99, -1.99], [0.49], [0.98, -1.98], [0.48]),
    # weights shrink by (1 - lr * wd) = 0.999 first, biases are not decayed
    (
        AdamW(lr=0.01, weight_decay=0.1),
        [0.999 - 0.01, -1.998 + 0.01],
        [0.49],
        [(0.999 - 0.01) * 0.999 - 0.01, (-1.998 + 0.01) * 0.999 + 0.01],
        [0.48],
    ),
    # L2 weight decay adds 0.5 * w to the weight gradient: [0.6, -1.2]
    (SGD(lr=0.1, weight_decay=0.5), [0.94, -1.88], [0.47], None, None),
]


@pytest.mark.parametrize("opt, w1, b1, w2, b2", HAND, ids=lambda v: repr(v)[:30])
def test_hand_computed_steps(opt, w1, b1, w2, b2):
    w, b = np.array([1.0, -2.0]), np.array([0.5])
    opt.step(w, b, G_W.copy(), G_B.copy())
    np.testing.assert_allclose(w, w1, rtol=1e-6)
    np.testing.assert_allclose(b, b1, rtol=1e-6)
    if w2 is not None:
        opt.step(w, b, G_W.copy(), G_B.copy())
        np.testing.assert_allclose(w, w2, rtol=1e-6)
        np.testing.assert_allclose(b, b2, rtol=1e-6)


@pytest.mark.parametrize(
    "name, lr",
    [
        ("sgd", 0.1),
        ("momentum", 0.02),
        ("nesterov", 0.02),
        ("rmsprop", 1e-3),
        ("adagrad", 0.02),
        ("adam", 1e-3),
        ("adamw", 1e-3),
    ],
)
def test_each_optimizer_reduces_the_loss_on_mnist(mnist_small, name, lr):
    x, y = mnist_small
    model = mlp([784, 32, 10], seed=0)
    before = evaluate(model, x, y)["loss"]
    fit(
        model,
        x,
        y,
        epochs=2,
        batch_size=64,
        optimizer=get_optimizer(name, lr=lr),
        validation=0.0,
        seed=0,
    )
    after = evaluate(model, x, y)
    assert after["loss"] < 0.5 * before, (before, after)
    assert after["accuracy"] > 0.8


def test_state_round_trip_continues_identically():
    w, b = np.array([1.0, -2.0]), np.array([0.5])
    a = Adam(lr=0.01)
    a.step(w, b, G_W, G_B)
    clone = Adam(lr=0.01)
    clone.load_state_arrays(a.state_arrays())
    w2, b2 = w.copy(), b.copy()
    a.step(w, b, G_W * 3, G_B)
    clone.step(w2, b2, G_W * 3, G_B)
    np.testing.assert_array_equal(w, w2)
    np.testing.assert_array_equal(b, b2)


@pytest.mark.parametrize("make", [SGD, Adam, AdamW], ids=["sgd", "adam", "adamw"])
def test_parameter_average_is_the_bias_corrected_moving_average(make):
    rng = np.random.default_rng(0)
    plain, averaging = make(lr=0.05), make(lr=0.05, average=0.9)
    w, b = np.array([1.0, -2.0]), np.array([0.5])
    w_avg, b_avg = w.copy(), b.copy()
    sum_w, sum_b, weight_sum = np.zeros(2), np.zeros(1), 0.0
    for _ in range(7):
        g_w, g_b = rng.normal(size=2), rng.normal(size=1)
        plain.step(w, b, g_w.copy(), g_b.copy())
        averaging.step(w_avg, b_avg, g_w.copy(), g_b.copy())
        np.testing.assert_array_equal(w_avg, w)  # the iterate itself is untouched
        # the average is sum_i 0.9^(k - i) * p_i, normalised by its weights
        sum_w, sum_b = 0.9 * sum_w + w, 0.9 * sum_b + b
        weight_sum = 0.9 * weight_sum + 1
        got_w, got_b = averaging.averaged()
        np.testing.assert_allclose(got_w, sum_w / weight_sum, rtol=1e-12)
        np.testing.assert_allclose(got_b, sum_b / weight_sum, rtol=1e-12)
    assert averaging.state_keys[-1] == "avg" and "avg" not in plain.state_keys
    clone = get_optimizer(**{"name": make.name, **averaging.config()})  # as a checkpoint does
    clone.load_state_arrays(averaging.state_arrays())
    np.testing.assert_array_equal(clone.averaged()[0], averaging.averaged()[0])
    with pytest.raises(ValueError, match="no parameter average"):
        plain.averaged()


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, inf\)"):
        SGD(lr=-1)
    with pytest.raises(ValueError, match="momentum"):
        Momentum(momentum=1.5)
    with pytest.raises(ValueError, match="average"):
        Adam(average=1.0)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        get_optimizer("lbfgs")
    assert get_optimizer("adam", lr=0.5).lr == 0.5
    with pytest.raises(ValueError, match=r"adam takes no setting 'lrr'; its settings are lr, "):
        get_optimizer("adam", lrr=0.5)  # a typo is not dropped
    with pytest.raises(ValueError, match="takes no setting 'momentum'"):
        get_optimizer("adam", lr=0.5, momentum=0.3)
    assert optimizer_settings("rmsprop") == ("lr", "rho", "eps", "weight_decay", "average")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_slot_sum_adds_the_workers_rows_in_order_as_np_sum_does(dtype):
    """The pool's split step sums the workers' gradient slots row by row: the numbers
    of ``np.sum(axis=0)``, bit for bit, for any number of slots and any offset."""
    rng = np.random.default_rng(0)
    opt = Adam()
    for rows in (1, 2, 3, 5):
        slots = rng.normal(size=(rows, 700)) * 10.0 ** rng.integers(-6, 6, (rows, 700))
        slots = slots.astype(dtype)
        like = np.empty(400, dtype)
        np.testing.assert_array_equal(
            opt.slot_sum(slots, 250, like), np.sum(slots[:, 250:650], axis=0)
        )


@pytest.mark.skipif(not kernels.available, reason="numba kernels are off or not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda: Adam(lr=1e-2),
        lambda: Adam(lr=1e-2, weight_decay=0.1, average=0.9),
        lambda: AdamW(lr=1e-2, weight_decay=0.1, average=0.99),
    ],
    ids=["adam", "adam-l2-averaged", "adamw-averaged"],
)
def test_the_fused_kernel_equals_the_numpy_rules(monkeypatch, dtype, make):
    """The numba kernel makes the same float operations as the NumPy rules: the same
    parameters, state and average, bit for bit, over several steps and 1 to 5 slots (the
    kernel adds the last slot itself)."""
    rng = np.random.default_rng(0)
    n = 1000
    for slots in (1, 2, 3, 5):
        start = rng.normal(size=n).astype(dtype)
        results = []
        for use_kernel in (True, False):
            monkeypatch.setattr(kernels, "available", use_kernel)
            opt, p = make(), start.copy()
            grads = np.random.default_rng(1).normal(size=(5, slots, n)).astype(dtype)
            for g in grads:
                opt.t += 1
                opt.apply_sum(opt.state[0], p, g.copy(), 64, decay=True)
            results.append((p, {k: v.copy() for k, v in opt.state[0].items()}))
        (p_kernel, s_kernel), (p_numpy, s_numpy) = results
        np.testing.assert_array_equal(p_kernel, p_numpy)
        assert set(s_kernel) == set(s_numpy)
        for key in s_numpy:
            np.testing.assert_array_equal(s_kernel[key], s_numpy[key], err_msg=key)


@pytest.mark.skipif(not kernels.available, reason="numba kernels are off or not installed")
def test_numba_is_set_up_without_importing_scipy_linalg_which_still_imports_after():
    """Importing ``nodenet.kernels`` keeps numba from importing ``scipy.linalg`` for its
    BLAS at the first compiled call (the kernels never use one), in this process's
    first Adam step as in a worker's warm-up; ``scipy.linalg`` imports as usual after,
    and the kernel steps as the NumPy rule does. In a fresh process: numba is set up once per
    process. Needs SciPy (the ``sklearn`` extra) to mean anything."""
    pytest.importorskip("scipy", reason="SciPy is not installed: nothing to hide")
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from nodenet import Adam, kernels
        p, g = np.ones(5, np.float32), np.full(5, 0.5, np.float32)
        Adam(lr=0.1).step_mean(p, p[:1].copy(), g, g[:1].copy(), 1)  # the first call
        kernels.warm_up()
        assert "scipy.linalg" not in sys.modules
        import scipy.linalg  # importable again
        kernels.available = False
        q = np.ones(5, np.float32)
        Adam(lr=0.1).step_mean(q, q[:1].copy(), g, g[:1].copy(), 1)
        np.testing.assert_array_equal(p, q)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
