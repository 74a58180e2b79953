"""The `libkd` command line: parses flags, loads the config, calls the pipeline library.

`parser.py` builds the argument parser, `main.py` maps each command to a `libkd_keras.pipeline`
call, `precompute.py` holds that command's flags and their checks (sharded precompute),
`config.py` gathers the config names, `quiet.py` hides TensorFlow's start-up noise.
Importing it does not import TensorFlow.
"""
