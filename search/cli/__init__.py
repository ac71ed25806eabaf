"""The ``avspot`` command line: the only layer that parses arguments (``argparse``).

``main.py`` builds the parser and dispatches, ``commands.py`` holds one thin handler per
command that calls library functions, ``train.py`` and ``quickstart.py`` the two commands that
compose several rooms. Handlers import lazily, so ``avspot --help`` loads no torch, ray or mlflow.
"""
