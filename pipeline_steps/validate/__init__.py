"""Validation of generated samples: the SHiP study's BDT figure of merit, plots, SPD fraction, summary.

Modules: ``figure_of_merit`` (classifier two-sample test), ``spd`` (covariance matrices),
``plots`` (1D with ratio, 2D pairs, BDT output, response), ``tables`` (real and generated rows in
the same physical columns), ``summary`` (the gathered CSV), ``step`` (the rules' ``run``).
"""
