"""The console's words, in Chinese (the default) and English, from `text.toml`. Every key
exists in both languages (a test checks); templates ask for them with `t("key")`."""

import tomllib
from importlib.resources import files
from typing import Final

LANGUAGES: Final = ("zh", "en")
DEFAULT: Final = "zh"

MESSAGES: Final[dict[str, dict[str, str]]] = tomllib.loads(
    (files("points_service.http.console") / "text.toml").read_text(encoding="utf-8")
)


def language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT


def translate(lang: str, key: str, **values: object) -> str:
    """The words for `key`; a key missing in one language is a bug the tests catch, and
    shows as the key itself rather than failing the page."""
    text = MESSAGES[language(lang)].get(key, key)
    return text.format(**values) if values else text
