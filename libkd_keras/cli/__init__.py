"""The `libkd` command line: config presets, the resumable pipeline, the run folder.

This is the only part of the package that reads flags or config files. Importing it does not
import TensorFlow; `libkd_keras.cli.pipeline` does.
"""
