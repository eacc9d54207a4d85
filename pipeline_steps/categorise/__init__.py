"""SHiP muon categorisation: charge x (from the target or not), min/max reduced over all files.

- ``categories``: the study's arithmetic (assign, per-file min/max, reduce, normalise, broaden, and
  the exact inverse ``denormalise`` that generation, validation and export use).
- ``step``: the ``categorise_minmax`` (map), ``categorise_reduce`` and ``categorise`` rules' ``run_*``.
"""
