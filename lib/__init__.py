"""Graph-based automatic image annotation (ML-GCN on Corel-5k and the embedded scenes dataset).

One module per concept: ``data`` (dataset format), ``synth`` (embedded scenes dataset),
``graph`` (label statistics and adjacency), ``embeddings`` (GloVe label vectors),
``models``, ``losses``, ``metrics``, ``training``, ``wgan`` (ML-WGAN augmentation),
``plots``, ``reports``; ``paths`` is the one place paths come from. ``python -m lib``
is the command-line interface.
"""

__version__ = "0.1.0"
