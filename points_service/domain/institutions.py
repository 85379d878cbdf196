"""Institutions (机构) and their member table: the seed's 姓名 / 分享文章数 / 发布动态总数,
with points, share views and last activity."""

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Final, Literal, get_args

import msgspec

from points_service.domain.boards import region_problems
from points_service.domain.events import TEXT_PATTERN
from points_service.domain.profiles import ProfileInvalid, Region

MemberSort = Literal["name", "shares", "posts", "points", "share_views", "last_activity"]
MEMBER_SORTS: Final[tuple[str, ...]] = get_args(MemberSort)


class Institution(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The body of `PUT /v1/institutions/{id}`: the whole record."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=TEXT_PATTERN)]
    province: Region | None = None
    city: Region | None = None
    county: Region | None = None
    contact: Annotated[str, msgspec.Meta(max_length=128, pattern=TEXT_PATTERN)] | None = None


def check_institution(institution: Institution) -> None:
    problems = region_problems(institution.province, institution.city, institution.county)
    if problems:
        raise ProfileInvalid(*problems[0])


@dataclass(frozen=True, slots=True)
class MemberRow:
    informant_id: str
    name: str | None
    shares: int
    posts: int
    points: int
    share_views: int
    last_activity: date | None  # the last programme day with a counted action, ever


@dataclass(frozen=True, slots=True)
class MemberTotals:
    members: int
    active: int  # members with a counted action in the period
    shares: int
    posts: int
    points: int
    share_views: int
