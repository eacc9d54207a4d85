"""The SHiP muon categories' numbers and the columns they are made from, in a module without numpy or pandas.

Snakemake imports the workflow plan at every start, and the plan names one table per category
(``cat1.parquet`` ... ``cat4.parquet``); importing ``categories`` for that would load pandas into
every planning run. The meaning of each number is in ``categories``: charge (mu- / mu+) times
origin (from the target / displaced). Planning also checks that a categorised model's table has
``REQUIRED_COLUMNS`` (``workflow_config.py``).
"""

CATEGORIES = (1, 2, 3, 4)
TARGET_VARIABLES = ("weight", "StartZ", "Px", "Py", "Pz")
DISPLACED_VARIABLES = ("weight", "StartX", "StartY", "StartZ", "Px", "Py", "Pz")
REQUIRED_COLUMNS = ("PdgCode",) + DISPLACED_VARIABLES
"""What the categorisation reads from the ingested SHiP muon table."""
