"""Fast-simulation workflow steps: all logic, importable without Snakemake."""
