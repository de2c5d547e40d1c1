"""A loaded recipe: the validated ``Recipe`` plus where it came from, and its resolved dumps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from tune.config.positions import PositionMap
from tune.config.schema import Recipe


@dataclass(frozen=True)
class LoadedRecipe:
    """A recipe that passed every check.

    ``recipe``: the validated Recipe, fully resolved (absolute paths, output dir, variant);
    ``source_path``: the absolute path of the recipe file named by the user; ``overrides``: the
    ``key=value`` texts applied; ``positions``: where each key was written (for later messages).
    """

    @property
    def output_dir_given(self) -> bool:
        """Whether a recipe file (or a base) or an override wrote `output.dir`; False when it is the
        default run folder `runs/<recipe stem>-<date-time>` filled in at resolution (then `tune run`
        may continue the newest matching interrupted run beside it instead). Without positions
        (a LoadedRecipe built by hand) it counts as given."""
        return self.positions is None or "output.dir" in self.positions.keys

    def with_output_dir(self, run_dir: Path) -> "LoadedRecipe":
        """This recipe writing into ``run_dir`` instead (the rest unchanged)."""
        output = self.recipe.output.model_copy(update={"dir": str(run_dir)})
        return replace(self, recipe=self.recipe.model_copy(update={"output": output}))

    def recorded(self) -> "LoadedRecipe":
        """The recipe as a run folder records it (`recipe.yaml`, which a rerun compares with and
        `tune run` reproduces the run from): `output.overwrite` false, and its override left out of
        the header. Starting over is what one command asked for, not part of the run: a job
        resubmitted from the record must not wipe the run it is continuing."""
        output = self.recipe.output.model_copy(update={"overwrite": False})
        overrides = tuple(o for o in self.overrides if not o.replace(" ", "").startswith("output.overwrite="))
        return replace(self, recipe=self.recipe.model_copy(update={"output": output}), overrides=overrides)

    recipe: Recipe
    source_path: Path
    overrides: tuple[str, ...] = ()
    positions: PositionMap | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        """The resolved recipe as plain data: every field, defaults included, in schema order."""
        return self.recipe.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved recipe as YAML, loadable again by ``load_recipe`` into an equal Recipe.

        It has no ``base:`` (everything is inlined) and starts with a comment naming its source.
        """
        header = f"# Resolved recipe (every key, defaults included) from {self.source_path}\n"
        if self.overrides:
            header += "# with overrides: " + " ".join(self.overrides) + "\n"
        body = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
        return header + body

    def to_json(self) -> str:
        """The resolved recipe as one JSON object (same content as ``to_yaml``)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)
