"""Command-line interface: ``python -m lib <command> [args]``.

Each command lives in the module of its concept as a ``main``-style function taking the
argument list; this file only dispatches, importing the module lazily so that a command
pays only for what it uses, and reports errors the one way every command shares
(:func:`lib.core.errors.report`): bad input is one line ``error: <file>: <problem>`` on stderr
and exit code 2; ``--debug`` anywhere (or ``AIA_DEBUG=1``) adds the traceback; Ctrl-C
is ``interrupted`` and exit code 130; argparse's usage errors keep its exit code 2.
"""

from __future__ import annotations

import importlib
import sys

from lib.core import errors

# command -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": ("lib.data.drawn.synth", "main", "draw the embedded scenes dataset"),
    "stats": ("lib.data.datasets", "stats_main", "label statistics of a dataset folder"),
    "embed": ("lib.data.embed", "embed_main", "compute and cache the label vectors"),
    "augment": ("lib.data.augmentation", "augment_main", "ML-WGAN augmentation (train_aug.json)"),
    "train": ("lib.training.launch", "train_main", "train a model into a run folder"),
    "evaluate": ("lib.training.inference", "evaluate_main", "evaluate a run folder (metrics.json)"),
    "score": ("lib.data.predictions", "score_main", "score a predictions CSV against a dataset"),
    "annotate": ("lib.training.inference", "annotate_main",
                 "annotate new images with a trained run"),
    "convert": ("lib.data.convert", "convert_main",
                "convert a TagProp / VOC / COCO release into a dataset folder"),
    "standin": ("lib.data.drawn.standin", "main",
                "draw Corel-shaped stand-in images for annotations"),
    "tables": ("lib.pipeline.results", "tables_main", "build the results tables from run folders"),
    "render": ("lib.pipeline.render", "render_main",
               "HTML reports and index.html of a results folder"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m lib <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "python -m lib <command> --help shows a command's options;",
              "--debug (or AIA_DEBUG=1) shows the traceback of an error."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.debug_requested(argv)
    argv = errors.strip_debug(argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    try:
        result = getattr(importlib.import_module(module), func)(rest)
    except (Exception, KeyboardInterrupt) as exc:  # SystemExit (argparse) passes through
        return errors.report(exc, debug=debug)
    return int(result or 0)
