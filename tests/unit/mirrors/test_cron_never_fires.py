"""A cron expression with valid syntax that never fires is refused (it used to be a 500)."""

from __future__ import annotations

import pytest

from taipan.domain.filters import validate_cron
from taipan.errors import InvalidInput


@pytest.mark.parametrize("expr", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 6 *"])
def test_never_firing_cron_is_invalid_input(expr: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_cron(expr)
    assert err.value.code == "invalid_cron" and "never fires" in err.value.message


@pytest.mark.parametrize("expr", ["0 0 29 2 *", "0 0 * * *", "*/15 2-4 * * 1-5"])
def test_rare_but_real_schedules_pass(expr: str) -> None:
    assert validate_cron(expr) == expr
