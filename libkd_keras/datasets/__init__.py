"""Data files shipped with the package (read through `libkd_keras.data.load_split`, e.g. "cifar10-sample")."""
