"""`tune launch pbs|slurm`: a recipe's topology as a cluster job (tune.launch.job_scripts).

The room sits beside tune.plan: it reads the recipe (config), never torch, and writes job scripts
from the templates of the top-level `scripts/` folder (shipped in the wheel as
``tune/_shipped/scripts``). The jobs themselves run `tune run` under torchrun on every node; how they
are laid out and why: docs/clusters.md.
"""
