"""scikit-learn estimators: ``NodenetClassifier`` and ``NodenetRegressor``, drop-ins for
``MLPClassifier`` and ``MLPRegressor`` (optional: ``pip install 'nodenet[sklearn]'``).

    from nodenet.sklearn import NodenetClassifier
    clf = NodenetClassifier(hidden_layer_sizes=(64,), max_iter=30, random_state=0)
    clf.fit(x, y).score(x_test, y_test)

=================  ==========================================================
``mapping.py``     ``SKLEARN_NAMES``: each parameter onto the settings table
``estimators.py``  what both share: parameters, solvers, fitted attributes
``classifier.py``  ``NodenetClassifier``
``regressor.py``   ``NodenetRegressor``
``rules.py``       scikit-learn's end-of-epoch rule (stopping, rate schedules)
``lbfgs.py``       ``solver="lbfgs"`` on the flat parameter vector
=================  ==========================================================
"""

try:
    import sklearn  # noqa: F401
except ImportError as exc:  # name the extra, not only the missing module
    raise ImportError("nodenet.sklearn needs scikit-learn: pip install 'nodenet[sklearn]'") from exc

from .classifier import NodenetClassifier
from .mapping import ATTRIBUTES, SKLEARN_NAMES
from .regressor import NodenetRegressor

__all__ = ["ATTRIBUTES", "SKLEARN_NAMES", "NodenetClassifier", "NodenetRegressor"]
