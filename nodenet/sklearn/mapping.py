"""The one written mapping between the estimators and nodenet's settings table.

parameter -> (nodenet setting or ``None``, where its default comes from, how it maps).
``"scikit-learn"``: MLPClassifier's / MLPRegressor's default; ``"table"``: the settings
table's (:data:`nodenet.settings.SETTINGS`); ``"as scikit-learn"``: a nodenet parameter
set so that the estimator behaves as scikit-learn's does. Tests hold the estimators'
defaults to it, and the README's parameter table is made from it.
"""

from __future__ import annotations

#: scikit-learn's activation names -> nodenet's
ACTIVATION_NAMES = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}

SKLEARN_NAMES: dict[str, tuple[str | None, str, str]] = {
    "hidden_layer_sizes": ("hidden", "scikit-learn", "the same sizes"),
    "activation": ("activation", "scikit-learn", "identity, logistic (nodenet's sigmoid), tanh, relu; nodenet's leaky_relu too"),
    "solver": ("optimizer", "scikit-learn", "adam; sgd (with momentum and nesterovs_momentum: nodenet's momentum or nesterov, the same update at a constant rate); lbfgs (scipy's L-BFGS-B on the flat parameter vector); or any nodenet optimizer name"),
    "alpha": ("weight_decay", "scikit-learn", "scikit-learn's L2 penalty: alpha * W added to the batch's summed gradient, divided by the batch's weight (weight_decay = alpha / (batch x mean sample weight); exact for full batches)"),
    "batch_size": ("batch_size", "scikit-learn", "'auto' is min(200, n_samples)"),
    "learning_rate": (None, "scikit-learn", "sgd's schedule: constant, invscaling (lr_init / (t + 1) ** power_t after each epoch, t the samples seen), adaptive (lr / 5 when the stopping rule fires, until lr < 1e-6)"),
    "learning_rate_init": ("lr", "scikit-learn", "the same"),
    "power_t": (None, "scikit-learn", "invscaling's exponent"),
    "max_iter": ("epochs", "scikit-learn", "epochs (lbfgs: iterations)"),
    "shuffle": ("shuffle", "scikit-learn", "the same"),
    "random_state": ("seed", "scikit-learn", "an int is the seed itself; None or a RandomState draws one"),
    "tol": (None, "scikit-learn", "the stopping rule's tolerance (lbfgs: gtol)"),
    "verbose": (None, "scikit-learn", "epoch lines and the stopping line"),
    "warm_start": (None, "scikit-learn", "fit continues the fitted network"),
    "momentum": ("momentum", "scikit-learn", "sgd's momentum"),
    "nesterovs_momentum": (None, "scikit-learn", "sgd: nesterov (True) or momentum (False)"),
    "early_stopping": ("validation", "scikit-learn", "holds out validation_fraction (stratified for classifiers) and stops on its score"),
    "validation_fraction": ("validation", "scikit-learn", "the share held out with early_stopping"),
    "beta_1": ("beta1", "scikit-learn", "adam's"),
    "beta_2": ("beta2", "scikit-learn", "adam's"),
    "epsilon": ("eps", "scikit-learn", "adam's"),
    "n_iter_no_change": (None, "scikit-learn", "the stopping rule's patience; np.inf never stops early"),
    "max_fun": (None, "scikit-learn", "lbfgs: most loss evaluations"),
    "loss": (None, "scikit-learn", "regressor only: 'squared_error' (scikit-learn's half squared error); 'poisson' is not supported (nodenet has no exponential output)"),
    "init": ("init", "as scikit-learn", "'glorot': scikit-learn's Glorot-uniform, biases too, factor 2 for logistic"),
    "dtype": ("dtype", "as scikit-learn", "float64, as scikit-learn computes on float64 inputs"),
    "normalise": ("normalise", "as scikit-learn", "None: the inputs as given"),
    "std_floor": ("std_floor", "as scikit-learn", "0: the textbook z-score (as nodenet train on a CSV)"),
    "average": ("average", "as scikit-learn", "0: the last iterate, as scikit-learn ends with"),
    "dropout": ("dropout", "table", "the same"),
    "batch_norm": ("batch_norm", "table", "the same"),
    "workers": ("workers", "table", "the same (lbfgs: the pool computes its gradients)"),
    "backend": ("backend", "table", "the same"),
}  # fmt: skip

#: fitted attributes: name -> what it means (scikit-learn's meaning unless said)
ATTRIBUTES: dict[str, str] = {
    "classes_": "the class labels (classifier)",
    "coefs_": "weight matrices (n_in, n_out) per layer: transposed views of the flat weights",
    "intercepts_": "bias vectors per layer: views of the flat biases",
    "loss_": "the last epoch's loss with the L2 penalty",
    "best_loss_": "the smallest loss_ (None with early_stopping)",
    "loss_curve_": "loss_ per epoch",
    "validation_scores_": "the validation score per epoch (early_stopping; else None)",
    "best_validation_score_": "the best of them (early_stopping; else None)",
    "t_": "training samples seen",
    "n_iter_": "epochs (lbfgs: iterations) run",
    "n_layers_": "layers, input and output included",
    "n_outputs_": "output units",
    "out_activation_": "softmax, logistic or identity",
    "n_features_in_": "input columns",
    "feature_names_in_": "the column names of a DataFrame X",
    "model_": "nodenet's Model (no scikit-learn counterpart)",
}


def markdown() -> str:
    """The parameter and attribute tables as Markdown (the README holds this text; a test
    keeps them equal)."""
    rows = ["| parameter | supported | nodenet setting | default from | how it maps |"]
    rows.append("|---|---|---|---|---|")
    for name, (setting, source, note) in SKLEARN_NAMES.items():
        supported = "partly" if "not supported" in note else "yes"
        shown = f"`{setting}`" if setting else ""
        rows.append(f"| `{name}` | {supported} | {shown} | {source} | {note} |")
    rows += ["", "| attribute | meaning |", "|---|---|"]
    rows += [f"| `{name}` | {meaning} |" for name, meaning in ATTRIBUTES.items()]
    return "\n".join(rows) + "\n"
