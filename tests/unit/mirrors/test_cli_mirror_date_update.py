"""`--update M --date_to D` changes only the end of the window, keeping the mirror's date_from."""

from __future__ import annotations

from taipan.cli.commands.mirror import filters_from_args
from taipan.cli.main import build_parser


def test_one_date_on_update_changes_only_that_date() -> None:
    args = build_parser().parse_args(["mirror", "--update", "m", "-c", "ch", "--date_to", "2024-02-29"])
    changes = filters_from_args(args)
    assert changes == {"date_to": "2024-02-29"}
    merged = {**{"date_from": "2024-01-01", "date_to": "2024-03-31"}, **changes}
    assert merged == {"date_from": "2024-01-01", "date_to": "2024-02-29"}


def test_filters_this_server_cannot_apply_are_announced() -> None:
    from taipan.cli.commands.mirror import not_applied_warnings

    parse = build_parser().parse_args
    args = parse(["mirror", "--create", "m", "-c", "ch", "--cve_score", "7.1", "--only_signed"])
    (warning,) = not_applied_warnings(args)
    assert "--only_signed" in warning and "not applied" in warning
    assert "--cve_score" not in warning  # CVE filters are applied now
    assert not_applied_warnings(parse(["mirror", "--create", "m", "-c", "ch", "--licenses", "mit"])) == []


def test_show_properties_may_follow_the_channel() -> None:
    args = build_parser().parse_args(["mirror", "--show", "boa", "--channel", "snakes", "state", "cron"])
    assert args.show == ["boa"] and args.channel == "snakes" and args.properties == ["state", "cron"]


def test_stray_words_outside_show_are_refused() -> None:
    import pytest

    from taipan.cli.commands.mirror import run
    from taipan.errors import InvalidInput

    args = build_parser().parse_args(["mirror", "--create", "m", "-c", "ch", "-s", "http://x/y", "ncurses"])
    with pytest.raises(InvalidInput) as err:
        run(None, args)  # type: ignore[arg-type]
    assert "ncurses" in err.value.message
