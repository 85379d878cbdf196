"""Reading rule files from a directory; the domain validates what is read.

Every set that validates is also copied to a "last good" directory. A process that
starts while the files are broken (a worker restarted after an edit, a deploy) serves
the last good set instead of failing, and says so; so a broken file never takes the
service down or replaces working rules.
"""

import os
import shutil
import tempfile
from pathlib import Path

from points_service.domain.abuse import Thresholds, load_thresholds
from points_service.domain.awards import Award, load_awards
from points_service.domain.boards import BoardSet, build_board_set
from points_service.domain.draws import DrawSet, build_draw_set
from points_service.domain.levels import LEVELS_FILE, ONE_LEVEL, Levels, load_levels
from points_service.domain.reports import load_population, load_targets
from points_service.domain.rules import RuleProblem, RuleSet, RuleSetInvalid, build_rule_set

# Files in the rules directory that other loaders read (not rule files).
NOT_RULES = frozenset(
    {"awards.toml", "population.toml", "targets.toml", "abuse.toml", "draws.toml", LEVELS_FILE}
)


def read_rule_dir(directory: Path, skip: frozenset[str] = NOT_RULES) -> dict[str, bytes]:
    if not directory.is_dir():
        raise RuleSetInvalid([RuleProblem(str(directory), None, None, "not a directory")])
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.toml")) if p.name not in skip}


def load_population_file(directory: Path) -> dict[str, int]:
    """`population.toml` in the rules directory (none there: no per-capita figures)."""
    path = directory / "population.toml"
    return load_population(path.name, path.read_bytes()) if path.exists() else {}


def load_target_file(directory: Path) -> dict[str, int]:
    """`targets.toml` in the rules directory (none there: no progress in reports)."""
    path = directory / "targets.toml"
    return load_targets(path.name, path.read_bytes()) if path.exists() else {}


def load_award_file(directory: Path) -> dict[str, Award]:
    """`awards.toml` in the rules directory (none there: no awards)."""
    path = directory / "awards.toml"
    return load_awards(path.name, path.read_bytes()) if path.exists() else {}


def load_level_file(directory: Path) -> Levels:
    """`levels.toml` in the rules directory (none there: one level for everyone)."""
    path = directory / LEVELS_FILE
    return load_levels(path.name, path.read_bytes()) if path.exists() else ONE_LEVEL


def load_abuse_file(directory: Path) -> Thresholds:
    """`abuse.toml` in the rules directory (none there: the defaults of domain/abuse.py)."""
    path = directory / "abuse.toml"
    return load_thresholds(path.name, path.read_bytes()) if path.exists() else Thresholds()


def load_draw_file(directory: Path) -> DrawSet:
    """`draws.toml` in the rules directory (none there: no draws)."""
    path = directory / "draws.toml"
    return build_draw_set(path.name, path.read_bytes()) if path.exists() else DrawSet()


def load_rule_dir(directory: Path) -> RuleSet:
    return build_rule_set(read_rule_dir(directory))


def load_board_dir(directory: Path) -> BoardSet:
    """`leaderboards/*.toml`; RuleSetInvalid names every problem."""
    return build_board_set(read_rule_dir(directory))


class RuleFiles:
    def __init__(self, directory: Path, last_good: Path) -> None:
        self.directory = directory
        self.last_good = last_good

    def load(self) -> RuleSet:
        """The files as they are now; a valid set is kept as the last good one."""
        documents = read_rule_dir(self.directory)
        rules = build_rule_set(documents)
        self._keep(documents)
        return rules

    def load_last_good(self) -> RuleSet:
        return load_rule_dir(self.last_good)

    def _keep(self, documents: dict[str, bytes]) -> None:
        if self.last_good.is_dir() and read_rule_dir(self.last_good) == documents:
            return
        self.last_good.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.last_good.parent, prefix=".rules-"))
        for name, data in documents.items():
            (staging / name).write_bytes(data)
        retired = self.last_good.with_name(self.last_good.name + ".old")
        shutil.rmtree(retired, ignore_errors=True)
        if self.last_good.exists():
            os.replace(self.last_good, retired)
        os.replace(staging, self.last_good)
        shutil.rmtree(retired, ignore_errors=True)
