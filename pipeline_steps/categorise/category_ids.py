"""The SHiP muon categories' numbers, in a module without numpy or pandas.

Snakemake imports the workflow plan at every start, and the plan names one table per category
(``cat1.parquet`` ... ``cat4.parquet``); importing ``categories`` for that would load pandas into
every planning run. The meaning of each number is in ``categories``: charge (mu- / mu+) times
origin (from the target / displaced).
"""

CATEGORIES = (1, 2, 3, 4)
