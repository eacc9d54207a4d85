"""Embedded default data: seeded, physically motivated raw ROOT files in the real layouts.

The workflow must run end to end with no data from anyone, through the *same* readers that read
real experiment files. Each layout module writes what a real source looks like (FairShip
``cbmsim``, CMS NanoAOD ``Events``, LHCb ``Tracks``, ATLAS CalRatio ``CalRatio``); ``step.run`` is
the Snakemake entry point; the physics is described in ``README.md`` beside this file.
"""

LAYOUTS = ("ship", "nanoaod", "lhcb_tracks", "calratio_main", "calratio_cr")
