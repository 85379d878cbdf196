"""Institutions and the admin's member table, through the API, on SQLite and PostgreSQL."""

import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from litestar.testing import AsyncTestClient
from openpyxl import load_workbook

from tests.conftest import unique
from tests.http.test_events_api import body

Client = AsyncTestClient  # type: ignore[type-arg]


async def test_institutions_are_validated_and_stored(client: Client) -> None:
    inst = unique("inst")
    record = {"name": "银川市科协", "province": "640000", "city": "640100", "contact": "0951"}
    r = await client.put(f"/v1/institutions/{inst}", json=record)
    assert r.status_code == 201, r.text
    got = (await client.get(f"/v1/institutions/{inst}")).json()
    assert got == {**record, "institution_id": inst, "county": None}
    assert (await client.put(f"/v1/institutions/{inst}", json=record)).status_code == 200
    for payload, field in (
        ({"name": "x", "province": "640000", "city": "650100"}, "city"),
        ({"province": "640000"}, "name"),
        ({"name": "x", "colour": "red"}, "colour"),
    ):
        r = await client.put(f"/v1/institutions/{inst}", json=payload)
        assert (r.status_code, r.json()["field"]) == (422, field), r.text
    assert (await client.get(f"/v1/institutions/{unique('none')}")).status_code == 404
    r = await client.get(f"/v1/institutions/{unique('none')}/members")
    assert r.status_code == 404


async def test_the_member_table(client: Client) -> None:
    inst, elsewhere = unique("inst"), unique("inst")
    await client.put(f"/v1/institutions/{inst}", json={"name": "兴庆区科协"})
    a, b, c, d = (f"{inst}-{x}" for x in "abcd")
    for who, name, where in (
        (a, "甲", inst),
        (b, "乙", inst),
        (c, "丙", inst),
        (d, "丁", elsewhere),
    ):
        r = await client.put(f"/v1/informants/{who}", json={"name": name, "institution_id": where})
        assert r.status_code == 201, r.text
    sent = [
        body(a, "share", content_id="c1"),
        body(a, "share", content_id="c2"),
        body(a, "share", content_id="c2"),  # a duplicate: counts nothing
        body(a, "post", content_id="p1"),
        body(b, "share", content_id="c1"),
        body(b, "login"),
        body(d, "share", content_id="c1"),  # not a member
    ]
    for event in sent:
        assert (await client.post("/v1/events", json=event)).status_code == 200

    # The expectation, computed from the events above with the default rules.
    expected = {
        a: {"name": "甲", "shares": 2, "posts": 1, "points": 2 + 2 + 3, "share_views": 0},
        b: {"name": "乙", "shares": 1, "posts": 0, "points": 2 + 1, "share_views": 0},
        c: {"name": "丙", "shares": 0, "posts": 0, "points": 0, "share_views": 0},
    }
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    table = (await client.get(f"/v1/institutions/{inst}/members", params={"period": "day"})).json()
    assert table["name"] == "兴庆区科协"
    assert table["period"]["key"] == f"day:{today}"
    assert [m["informant_id"] for m in table["members"]] == [a, b, c]  # by shares, most first
    for m in table["members"]:
        who = m.pop("informant_id")
        last = m.pop("last_activity")
        assert m == expected[who]
        assert last == (None if who == c else today)
    assert table["totals"] == {
        "members": 3, "active": 2, "shares": 3, "posts": 1, "points": 10, "share_views": 0,
    }  # fmt: skip

    first = (
        await client.get(
            f"/v1/institutions/{inst}/members", params={"sort": "name", "limit": 2, "period": "all"}
        )
    ).json()
    assert first["order"] == "asc"
    names = [m["name"] for m in first["members"]]
    assert names == sorted(["甲", "乙", "丙"])[:2]
    rest = (
        await client.get(
            f"/v1/institutions/{inst}/members",
            params={"sort": "name", "limit": 2, "period": "all", "cursor": first["next_cursor"]},
        )
    ).json()
    assert [m["name"] for m in rest["members"]] == sorted(["甲", "乙", "丙"])[2:]
    assert rest["next_cursor"] is None

    r = await client.get(
        f"/v1/institutions/{inst}/members", params={"period": "day", "format": "xlsx"}
    )
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert [c.value for c in sheet[1]][:4] == ["姓名", "信息员ID", "分享文章数", "发布动态总数"]
    assert [row[:4] for row in sheet.iter_rows(min_row=2, values_only=True)] == [
        ("甲", a, 2, 1), ("乙", b, 1, 0), ("丙", c, 0, 0),
    ]  # fmt: skip
    r = await client.get(f"/v1/institutions/{inst}/members", params={"format": "csv"})
    assert r.content.startswith(b"\xef\xbb\xbf")

    # a member who moves to another institution leaves this table
    await client.put(f"/v1/informants/{b}", json={"name": "乙", "institution_id": elsewhere})
    table = (await client.get(f"/v1/institutions/{inst}/members")).json()
    assert {m["informant_id"] for m in table["members"]} == {a, c}

    for params, field in (({"sort": "karma"}, "sort"), ({"order": "up"}, "order"),
                          ({"period": "month:2026-13"}, "period")):  # fmt: skip
        r = await client.get(f"/v1/institutions/{inst}/members", params=params)
        assert (r.status_code, r.json()["field"]) == (422, field), r.text
