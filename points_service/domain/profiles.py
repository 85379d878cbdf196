"""Informant profiles: who an informant is and where they belong.

Where they belong (province, city, county, institution) decides the boards their events
count on from the moment the profile says so; events already credited keep the boards
they counted on. `hidden` and `banned` informants are on no board until restored.
"""

from datetime import datetime
from typing import Annotated, Final, Literal, get_args

import msgspec

from points_service.domain.boards import Placement, region_problems
from points_service.domain.events import ID_PATTERN, TEXT_PATTERN

Status = Literal["active", "hidden", "banned"]
STATUSES: Final[tuple[str, ...]] = get_args(Status)
# 科普员类型: 中国科协 / 省级 / 市级 / 区县级 / 乡镇街道 / 个人用户
InformantType = Literal["national", "provincial", "city", "county", "township", "individual"]
INFORMANT_TYPES: Final[tuple[str, ...]] = get_args(InformantType)

Region = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$(?!\n)")]  # as ID_PATTERN
InstitutionId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=TEXT_PATTERN)]


class Profile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The body of `PUT /v1/informants/{id}`: the whole profile (absent means unset)."""

    name: Name | None = None
    province: Region | None = None
    city: Region | None = None
    county: Region | None = None
    unit_name: Annotated[str, msgspec.Meta(max_length=128, pattern=TEXT_PATTERN)] | None = None
    type: InformantType | None = None
    institution_id: InstitutionId | None = None
    certified: bool = False
    registered_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    status: Status = "active"

    @property
    def placement(self) -> Placement:
        return Placement(self.province, self.city, self.county, self.institution_id)

    @property
    def listed(self) -> bool:
        """On the leaderboards (hidden and banned informants are not)."""
        return self.status == "active"


class ProfileInvalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_profile(profile: Profile) -> None:
    """What a Struct cannot say: the city is in the province, the county in the city."""
    problems = region_problems(profile.province, profile.city, profile.county)
    if problems:
        raise ProfileInvalid(*problems[0])
