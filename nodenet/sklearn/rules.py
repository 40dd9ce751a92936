"""scikit-learn's end-of-epoch rule for its stochastic solvers, as a nodenet callback.

After every epoch ``MLPClassifier`` records ``loss_`` (the mean loss plus the L2
penalty) or, with ``early_stopping``, the validation score; counts the epochs that did
not improve on the best by ``tol``; with ``solver="sgd"`` sets the invscaling rate
``lr_init / (t + 1) ** power_t`` (``t`` the samples seen); and once the count passes
``n_iter_no_change`` either divides an adaptive rate by 5 (until it is at most 1e-6) or
stops. With early stopping the best epoch's weights are restored at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from ..callbacks import Callback

ADAPTIVE_FLOOR = 1e-6  # scikit-learn's: an adaptive rate at or below it stops the run


class SklearnRule(Callback):
    """The rule for ``estimator`` (its fitted attributes are updated in place).

    ``score``: the validation score of the model as it stands (``None`` without early
    stopping); ``rows``: training rows per epoch; ``penalty``: the L2 term added to the
    epoch's mean loss for the weights as they stand; ``scale``: what the mean loss is
    multiplied by first (scikit-learn reports a regressor's loss per output).
    """

    def __init__(
        self,
        estimator,
        score: Callable[[], float] | None,
        rows: int,
        penalty: Callable[[], float],
        scale: float = 1.0,
    ):
        super().__init__()
        self.estimator, self.score, self.rows, self.penalty = estimator, score, rows, penalty
        self.scale = scale
        self.best_weights: tuple[np.ndarray, ...] | None = None

    def on_epoch_end(self, epoch, logs=None):
        est, model = self.estimator, self.model
        loss = float(logs["loss"]) * self.scale + self.penalty()
        est.loss_ = loss
        est.loss_curve_.append(loss)
        est.n_iter_ += 1
        est.t_ += self.rows
        if self.score is not None:
            score = self.score()
            est.validation_scores_.append(score)
            worse = score < est.best_validation_score_ + est.tol
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_weights = tuple(a.copy() for a in self._flats())
        else:
            worse = loss > est.best_loss_ - est.tol
            est.best_loss_ = min(est.best_loss_, loss)
        est._no_improvement_count = est._no_improvement_count + 1 if worse else 0
        optimizer = model.optimizer
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            optimizer.lr = est.learning_rate_init / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            adaptive = est.solver == "sgd" and est.learning_rate == "adaptive"
            if adaptive and optimizer.lr > ADAPTIVE_FLOOR:
                optimizer.lr /= 5.0
                est._no_improvement_count = 0
                self._say(f"setting the learning rate to {optimizer.lr:g}")
            else:
                est._stopped = True
                model.stop_training = True
                what = "validation score" if self.score is not None else "training loss"
                self._say(
                    f"{what} did not improve more than tol={est.tol:g} for "
                    f"{est.n_iter_no_change} consecutive epochs: stopping"
                )

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            for flat, best in zip(self._flats(), self.best_weights, strict=True):
                flat[...] = best

    def _flats(self) -> tuple[np.ndarray, ...]:
        model = self.model
        return model.weights, model.biases, model.running

    def _say(self, text: str) -> None:
        if self.estimator.verbose:
            print(text, file=sys.stdout, flush=True)
