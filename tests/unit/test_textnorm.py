import unicodedata

import pytest

from intake.core.textnorm import fold, folded_words, nfc, tokens


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Cháy nhà", "chay nha"),
        ("CHÁY NHÀ", "chay nha"),
        ("chạy", "chay"),
        ("chảy máu", "chay mau"),
        ("Đường Đê La Thành", "duong de la thanh"),
        ("đâm", "dam"),
        ("Ngã tư Sở", "nga tu so"),
        ("Hỏa hoạn", "hoa hoan"),
        ("hoả hoạn", "hoa hoan"),  # old tone placement folds the same
        ("Phường Điện Biên, Quận Ba Đình", "phuong dien bien, quan ba dinh"),
        ("fire", "fire"),
        ("", ""),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_fold_keeps_whitespace_and_punctuation() -> None:
    assert fold("Cứu!\n  Cháy\tnhà.") == "cuu!\n  chay\tnha."


def test_fold_handles_decomposed_input() -> None:
    decomposed = unicodedata.normalize("NFD", "Cháy nhà ở Hà Nội")
    assert decomposed != "Cháy nhà ở Hà Nội"
    assert fold(decomposed) == "chay nha o ha noi"


def test_fold_is_idempotent() -> None:
    text = "Xe máy đâm ô tô ở ngã tư, 2 người bị thương"
    assert fold(fold(text)) == fold(text)


def test_nfc_composes() -> None:
    assert nfc("cha\u0301y") == "cháy"


def test_tokens_are_folded_words_without_punctuation() -> None:
    assert tokens("Cháy nhà!!! Số 12/34, phố Huế.") == ["chay", "nha", "so", "12", "34", "pho", "hue"]


def test_tokens_split_contractions_and_hyphens() -> None:
    assert tokens("There's no fire, it isn't") == ["there", "s", "no", "fire", "it", "isn", "t"]
    assert tokens("ô-tô") == ["o", "to"]


def test_tokens_drop_what_does_not_fold_to_ascii() -> None:
    assert tokens("🔥🔥 cháy 火事") == ["chay"]
    assert tokens("") == []


def test_folded_words_join_with_single_spaces() -> None:
    assert folded_words("  Cháy   nhà,\nkhói   đen ") == "chay nha khoi den"


def test_accented_and_unaccented_fold_to_the_same_words() -> None:
    assert folded_words("Tai nạn giao thông ở Cầu Giấy") == folded_words("tai nan giao thong o cau giay")
