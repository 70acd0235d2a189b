"""Graph-based automatic image annotation (ML-GCN on Corel-5k and the embedded scenes dataset).

One module per concept; docs/ARCHITECTURE.md maps the stages to the modules. ``paths`` is
the one place paths come from, ``config`` the machinery of settings, ``runs`` the one reader
and writer of run folders. ``python -m lib`` is the command-line interface.
"""

import warnings

__version__ = "0.1.0"

# tqdm.auto falls back to text bars in a kernel without ipywidgets (papermill runs);
# its warning about that is noise in every executed notebook. `make lab` installs ipywidgets.
warnings.filterwarnings("ignore", message="IProgress not found")
