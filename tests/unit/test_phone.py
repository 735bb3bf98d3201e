import pytest

from intake.core.phone import dialled_line, normalise_phone


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0912 345 678", "+84912345678"),
        ("0912345678", "+84912345678"),
        ("+84 912 345 678", "+84912345678"),
        ("84912345678", "+84912345678"),
        ("(024) 3826 1234", "+842438261234"),
        ("+1 415 555 2671", "+14155552671"),
    ],
)
def test_numbers_become_e164_and_keep_their_raw_form(raw: str, e164: str) -> None:
    phone = normalise_phone(raw)
    assert phone.e164 == e164 and phone.valid and phone.raw == raw


@pytest.mark.parametrize("raw", ["112", "113", "114", "115"])
def test_emergency_short_codes_are_recognised(raw: str) -> None:
    phone = normalise_phone(raw)
    assert phone.short_code == raw and phone.e164 is None


@pytest.mark.parametrize("raw", ["call me", "12345", "0912", "+84 000 000 000"])
def test_invalid_numbers_are_kept_raw_and_flagged(raw: str) -> None:
    phone = normalise_phone(raw)
    assert not phone.valid and phone.e164 is None and phone.raw == raw and phone.key == raw


@pytest.mark.parametrize(("dialled", "line"), [("112", "112"), ("+84114", "114"), ("0115", "115"), ("113 ", "113"),
                                               ("1900", None), ("", None), (None, None)])
def test_dialled_line(dialled: str | None, line: str | None) -> None:
    assert dialled_line(dialled) == line
