"""Linear CKA (paper eq. 2; Kornblith et al., 2019) between layers of one model or of two models.

Three files, read in this order:

- `estimators.py`: the math on NumPy arrays: `linear_cka`, `cka_matrix` (whole sample) and
  `MinibatchCKA` (Nguyen et al., 2021: unbiased HSIC averaged over minibatches).
- `representations.py`: what is compared: `layer_representations(model, images)` (a DeiT's
  tokens after the embedding and every block, a ResNet/RedNet's stem and every block), and
  `minibatch_cka_matrix(es)`, which stream models' activations into `MinibatchCKA`.
- `run.py`: one pipeline run: `analyze_run(run_dir, images)` draws the paper's Figures 1-2
  heatmaps (`plot_cka_heatmap`), every student against every other (`layerwise_cka`), and
  writes the report's CKA section.

Example:
>>> x = np.random.default_rng(0).normal(size=(100, 8))
>>> round(linear_cka(x, 3.0 * x), 6)
1.0
"""

from libkd_keras.analysis.cka.estimators import (
    MIN_UNBIASED_BATCH,
    MinibatchCKA,
    center_gram,
    cka_matrix,
    gram,
    linear_cka,
)
from libkd_keras.analysis.cka.representations import (
    iter_representations,
    layer_representations,
    minibatch_cka_matrices,
    minibatch_cka_matrix,
    representation_layers,
)
from libkd_keras.analysis.cka.run import analyze_run, find_run_models, layerwise_cka, plot_cka_heatmap

__all__ = [
    "MIN_UNBIASED_BATCH",
    "MinibatchCKA",
    "analyze_run",
    "center_gram",
    "cka_matrix",
    "find_run_models",
    "gram",
    "iter_representations",
    "layer_representations",
    "layerwise_cka",
    "linear_cka",
    "minibatch_cka_matrices",
    "minibatch_cka_matrix",
    "plot_cka_heatmap",
    "representation_layers",
]
