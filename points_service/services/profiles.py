"""Informant profiles: stored in SQL, mirrored into the informant's Redis state (where the
credit path reads placement and status atomically with the event), and reflected on the
leaderboards when the status hides or restores the informant."""

from collections.abc import Callable
from datetime import datetime

from points_service.domain.profiles import Profile, ProfileInvalid, check_profile
from points_service.services.errors import InvalidInput, NotFound
from points_service.services.leaderboards import Leaderboards
from points_service.services.ports import ProfileMirror, ProfileStore


class Profiles:
    def __init__(
        self,
        store: ProfileStore,
        mirror: ProfileMirror,
        boards: Leaderboards,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._mirror = mirror
        self._boards = boards
        self._clock = clock

    async def get(self, informant_id: str) -> Profile:
        profile = await self._store.get(informant_id)
        if profile is None:
            raise NotFound(f"no profile for informant {informant_id!r}")
        return profile

    async def find(self, text: str, limit: int = 20) -> list[tuple[str, Profile]]:
        """By id, or by (the start of) a name: the console's informant search."""
        text = text.strip()
        if not text:
            raise InvalidInput("informant", "an informant id or a name")
        return await self._store.find(text[:64], limit)

    async def put(self, informant_id: str, profile: Profile) -> tuple[Profile, bool]:
        """Store the whole profile; (profile, created). A new placement counts from now
        on; a status that hides the informant takes them off every board, and one that
        lists them again puts their scores back from the ledger."""
        try:
            check_profile(profile)
        except ProfileInvalid as exc:
            raise InvalidInput(exc.field, exc.message) from None
        previous = await self._store.put(informant_id, profile, self._clock())
        await self._mirror.set_profile(informant_id, profile)
        self._boards.forget_display(informant_id)
        was_listed = previous is None or previous.listed
        if was_listed and not profile.listed:
            await self._boards.hide(informant_id)
        elif not was_listed and profile.listed:
            await self._boards.restore(informant_id)
        return profile, previous is None

    async def sync_mirror(self) -> int:
        """Copy every profile into Redis again (after Redis lost its data)."""
        count = 0
        async for informant_id, profile in self._store.all_profiles():
            await self._mirror.set_profile(informant_id, profile)
            count += 1
        return count
