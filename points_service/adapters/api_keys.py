"""API keys: made here, stored only as hashes in a TOML file (and/or the environment).

    [[keys]]
    name = "app-backend"
    hash = "sha256:9f86d0…"
    scopes = ["events:write", "read"]
    secret = "pss_…"          # optional: this key signs its event requests (HMAC)

A key is `ps_` and 43 URL-safe characters (256 random bits), so a plain SHA-256 is
enough to keep it: there is nothing to guess. `POINTS_API_KEYS` may hold the same list
as JSON (`[{"name": …, "hash": …, "scopes": […]}]`), for secrets stores. A signing
secret has to be kept as it is (the service computes the HMAC with it), so a file that
holds one must be readable by the service only.
"""

import hashlib
import os
import secrets
import tomllib
from pathlib import Path
from typing import Annotated

import msgspec

from points_service.domain.access import ADMIN, ApiKey, scope_problem

KEY_PREFIX = "ps_"
ADMIN_KEY_FILE = "admin.key"
Digest = Annotated[str, msgspec.Meta(pattern=r"^sha256:[0-9a-f]{64}$")]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.@:\-]{1,64}$")]
Secret = Annotated[str, msgspec.Meta(pattern=r"^\S{32,256}$")]


class KeyEntry(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Name
    hash: Digest
    scopes: Annotated[list[str], msgspec.Meta(min_length=1)]
    secret: Secret | None = None


class KeyFile(msgspec.Struct, forbid_unknown_fields=True):
    keys: list[KeyEntry] = msgspec.field(default_factory=list)


class KeysInvalid(ValueError):
    pass


def digest(key: str | bytes) -> str:
    raw = key.encode() if isinstance(key, str) else key
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _entries(where: str, entries: list[KeyEntry]) -> list[ApiKey]:
    keys = []
    for n, entry in enumerate(entries):
        for scope in entry.scopes:
            problem = scope_problem(scope)
            if problem is not None:
                raise KeysInvalid(f"{where}: key {entry.name!r} (keys[{n}]): {problem}")
        keys.append(ApiKey(entry.name, entry.hash, frozenset(entry.scopes), entry.secret))
    return keys


def load_keys(path: Path, environment: str | None) -> list[ApiKey]:
    """The keys of the file (if it exists) and of the environment's JSON."""
    keys: list[ApiKey] = []
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            keys += _entries(str(path), msgspec.convert(raw, KeyFile).keys)
        except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
            raise KeysInvalid(f"{path}: {exc}") from None
    if environment:
        try:
            entries = msgspec.json.decode(environment, type=list[KeyEntry])
        except msgspec.DecodeError as exc:
            raise KeysInvalid(f"POINTS_API_KEYS: {exc}") from None
        keys += _entries("POINTS_API_KEYS", entries)
    names = [k.name for k in keys]
    for name in names:
        if names.count(name) > 1:
            raise KeysInvalid(f"key name {name!r} is used twice")
    return keys


def add_key(path: Path, name: str, scopes: list[str], secret: str | None = None) -> str:
    """Make a key, append its hash (and the signing secret, if any) to the file, and
    return the key (shown once)."""
    for scope in scopes:
        problem = scope_problem(scope)
        if problem is not None:
            raise KeysInvalid(problem)
    if not scopes:
        raise KeysInvalid("a key needs at least one scope")
    try:
        msgspec.convert(name, Name)
    except msgspec.ValidationError:
        raise KeysInvalid(f"key name {name!r}: 1-64 of letters, digits and _ . @ : -") from None
    if any(k.name == name for k in load_keys(path, None)):
        raise KeysInvalid(f"key name {name!r} is used already")
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = (
        f"\n[[keys]]\nname = {_toml(name)}\nhash = {_toml(digest(key))}\n"
        f"scopes = [{', '.join(_toml(s) for s in scopes)}]\n"
    )
    if secret is not None:
        entry += f"secret = {_toml(secret)}\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as out:
        if out.tell() == 0:
            out.write("# API keys of points-service: hashes only (`points-service keys create`).\n")
        out.write(entry)
    return key


def _toml(value: str) -> str:
    return msgspec.json.encode(value).decode()  # a JSON string is a TOML basic string


def first_run_admin_key(data_dir: Path, keys_file: Path, environment: str | None) -> Path | None:
    """With no keys configured at all, make an admin key: its hash into the key file,
    the key itself into `data_dir/admin.key` (owner-only). Returns that file's path when
    it made one."""
    if keys_file.exists() or environment:
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    key = add_key(keys_file, "local-admin", [ADMIN])
    target = data_dir / ADMIN_KEY_FILE
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(key + "\n")
    return target
