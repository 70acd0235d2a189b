"""Graph-based automatic image annotation (ML-GCN on Corel-5k and the embedded scenes dataset).

One module per concept: ``data`` (dataset format), ``synth`` (embedded scenes dataset),
``graph`` (label statistics and adjacency), ``embeddings`` (GloVe label vectors),
``models``, ``losses``, ``metrics``, ``training``, ``wgan`` (ML-WGAN augmentation),
``plots``, ``reports``; ``paths`` is the one place paths come from. ``python -m lib``
is the command-line interface.
"""

import warnings

__version__ = "0.1.0"

# tqdm.auto falls back to text bars in a kernel without ipywidgets (papermill runs);
# its warning about that is noise in every executed notebook. `make lab` installs ipywidgets.
warnings.filterwarnings("ignore", message="IProgress not found")
