"""``make verify``: python -m pipeline_steps.provenance [results/provenance.json [root]]."""

import sys

from pipeline_steps.provenance.document import verify

raise SystemExit(verify(*sys.argv[1:3]))
