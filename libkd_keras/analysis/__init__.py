"""Representation analysis (CKA), ablations, plots and the run report."""
