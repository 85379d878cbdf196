"""Reading rule files from a directory; the domain validates what is read."""

from pathlib import Path

from points_service.domain.rules import RuleProblem, RuleSet, RuleSetInvalid, build_rule_set


def load_rule_dir(directory: Path) -> RuleSet:
    if not directory.is_dir():
        raise RuleSetInvalid([RuleProblem(str(directory), None, None, "not a directory")])
    documents = {p.name: p.read_bytes() for p in sorted(directory.glob("*.toml"))}
    return build_rule_set(documents)
