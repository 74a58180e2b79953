"""Shipped run presets (TOML): quick, budget and the paper's recipes; see `libkd pipeline --help`."""
