import tomllib
from importlib import resources

import pytest

from intake.core.classify import ROUTES, THRESHOLD, _split, classify, device_code_info
from intake.core.model import Category, Classification
from intake.core.textnorm import tokens

FIRE, POLICE, MEDICAL, UNKNOWN = Category.FIRE, Category.POLICE, Category.MEDICAL, Category.UNKNOWN


def terms(c: Classification, *, negated: bool = False) -> set[str]:
    return {e.term for e in c.evidence if e.source == "text" and e.negated is negated}


# (text, category, a kind it must recognise). Messages as people send them: accented, SMS-style
# without accents, with abbreviations; the kinds cover the routing table.
VI_CASES = [
    ("Cháy nhà ở số 12 ngõ 34 Hàng Bạc, khói đen mù mịt", FIRE, "structure_fire"),
    ("chay nha o ngo 5 pho hue, lua boc cao lam", FIRE, "structure_fire"),
    ("Alo cứu hỏa ơi, chung cư Linh Đàm tầng 15 đang cháy", FIRE, "fire"),
    ("co chay o cho dong xuan, nhieu khoi lam", FIRE, "fire"),
    ("Xe ô tô bốc cháy trên cầu Thanh Trì", FIRE, "vehicle_fire"),
    ("Cháy rừng trên núi Sóc Sơn, lửa lan nhanh", FIRE, "wildfire"),
    ("Chuông báo cháy ở tầng 3 tòa nhà kêu liên tục", FIRE, "fire_alarm"),
    ("Nhà tôi ngửi thấy mùi gas rất nồng, bình gas bị rò", FIRE, "gas_leak"),
    ("ro ri gas o nha bep, ko dam bat den", FIRE, "gas_leak"),
    ("Có tiếng nổ lớn ở xưởng sản xuất trên đường Nguyễn Trãi", FIRE, "explosion"),
    ("Nhà bên cạnh đốt than tổ ong, cả nhà bị ngạt khí than", FIRE, "carbon_monoxide"),
    ("Rò rỉ hóa chất ở khu công nghiệp, mùi rất hắc", FIRE, "chemical_spill"),
    ("Chập điện cháy công tơ ở cầu thang khu tập thể", FIRE, "electrical_hazard"),
    ("Thang máy chung cư bị kẹt, có 3 người mắc kẹt bên trong", FIRE, "trapped"),
    ("be bi ket dau vao lan can ban cong tang 4", FIRE, "trapped"),
    ("Có cháu bé bị đuối nước ở hồ Tây", FIRE, "drowning"),
    ("co nguoi chet duoi o song Hong gan cau Long Bien", FIRE, "drowning"),
    ("Sập nhà 3 tầng ở Phúc Xá, có người bị vùi", FIRE, "building_collapse"),
    ("Nước lũ dâng cao, cả nhà mắc kẹt trên mái", FIRE, "flood"),
    ("Sạt lở đất ở Ba Vì, đất đá vùi lấp nhà dân", FIRE, "landslide"),
    ("Cây đổ chắn ngang đường Kim Mã sau cơn giông", FIRE, "fallen_tree"),
    ("Có tổ ong vò vẽ to trước cửa nhà, trẻ con sợ lắm", FIRE, "animal_hazard"),
    ("Tai nạn giao thông ở ngã tư Sở, xe máy đâm ô tô", POLICE, "vehicle_accident"),
    ("tngt o nga tu so, 2 xe may dam nhau", POLICE, "vehicle_accident"),
    ("Xe tải lật trên đại lộ Thăng Long, tài xế bị thương", POLICE, "vehicle_accident"),
    ("xe may dam vao nguoi di bo, nguoi bi thuong nang, chay mau nhieu", POLICE, "vehicle_accident"),
    ("Có đánh nhau ở quán nhậu đầu ngõ, cả chục người", POLICE, "fight"),
    ("danh nhau to o cong truong, co nguoi cam gay", POLICE, "fight"),
    ("Tôi vừa bị cướp giật điện thoại trên phố Tràng Tiền", POLICE, "robbery"),
    ("bi giat tui xach o ho guom, ten cuop chay ve huong hang bai", POLICE, "robbery"),
    ("Mất trộm xe máy trước cửa nhà", POLICE, "theft"),
    ("Nhà tôi bị trộm đột nhập lúc nửa đêm", POLICE, "burglary"),
    ("Chuông báo động chống trộm nhà bên kêu mãi không tắt", POLICE, "burglar_alarm"),
    ("Nhân viên ngân hàng đã bấm nút khẩn cấp", POLICE, "panic_alarm"),
    ("Tôi bị một nhóm thanh niên hành hung ở bến xe", POLICE, "assault"),
    ("Có người bị đâm chém ở chợ Long Biên", POLICE, "stabbing"),
    ("Có kẻ lạ mặt cầm súng trong ngân hàng", POLICE, "shooting"),
    ("Có án mạng ở nhà trọ, một người bị giết", POLICE, "murder"),
    ("Con tôi bị bắt cóc ở cổng trường", POLICE, "kidnapping"),
    ("Chồng say rượu đánh vợ con, hàng xóm can không được", POLICE, "domestic_violence"),
    ("Con gái tôi bị xâm hại ở nhà hàng xóm", POLICE, "sexual_assault"),
    ("Có thanh niên cầm dao đe dọa người đi đường", POLICE, "threat"),
    ("Đua xe trái phép, nẹt pô ầm ĩ trên đường Láng", POLICE, "disturbance"),
    ("Có nhóm thanh niên tụ tập chơi ma túy trong ngõ", POLICE, "drugs"),
    ("Có người lạ mặt lảng vảng trước nhà tôi mấy đêm nay", POLICE, "suspicious_person"),
    ("Bé trai 5 tuổi bị lạc ở công viên Thống Nhất", POLICE, "lost_child"),
    ("mat lien lac voi ong noi tu sang, ong bi lan", POLICE, "missing_person"),
    ("Phát hiện thi thể nổi trên sông Tô Lịch", POLICE, "body_found"),
    ("Có người đứng trên lan can cầu Chương Dương đòi nhảy", POLICE, "jumper"),
    ("Đèn giao thông hỏng, ùn tắc kéo dài ở Cầu Giấy", POLICE, "traffic_hazard"),
    ("Bị lừa đảo chuyển tiền qua mạng mất 50 triệu", POLICE, "fraud"),
    ("Ông tôi bất tỉnh, gọi không tỉnh", MEDICAL, "unconscious"),
    ("me toi bi ngat xiu o cho", MEDICAL, "unconscious"),
    ("ba toi dau nguc du doi, kho tho", MEDICAL, "cardiac"),
    ("Mẹ tôi bị méo miệng, nói ngọng, yếu nửa người, nghi đột quỵ", MEDICAL, "stroke"),
    ("Bà tôi lên cơn hen, khó thở lắm", MEDICAL, "breathing_difficulty"),
    ("Em bé bị hóc thạch, mặt tím tái", MEDICAL, "choking"),
    ("Chảy máu nhiều không cầm được ở chân", MEDICAL, "bleeding"),
    ("Công nhân bị thương nặng do máy cắt", MEDICAL, "injury"),
    ("Công nhân ngã từ giàn giáo tầng 5", MEDICAL, "fall"),
    ("Bé bị bỏng nước sôi ở tay", MEDICAL, "burns"),
    ("Cả nhà bị ngộ độc thực phẩm sau đám cưới, nôn mửa", MEDICAL, "poisoning"),
    ("Bạn tôi uống quá liều thuốc ngủ", MEDICAL, "overdose"),
    ("Bà cụ lên cơn co giật, sùi bọt mép", MEDICAL, "seizure"),
    ("Vợ tôi vỡ ối, sắp sinh rồi", MEDICAL, "childbirth"),
    ("vo toi chuyen da roi, can xe cap cuu gap", MEDICAL, "childbirth"),
    ("Bé nhà em bị sốc phản vệ sau khi tiêm", MEDICAL, "allergy"),
    ("Có người bị điện giật khi sửa điện", MEDICAL, "electrocution"),
    ("co nguoi uong thuoc tu tu", MEDICAL, "suicide_attempt"),
    ("Con tôi bị chó cắn chảy máu", MEDICAL, "animal_bite"),
    ("Bà tôi sốt cao, mệt lả, không ăn uống được", MEDICAL, "illness"),
]

EN_CASES = [
    ("My house is on fire, please send help", FIRE, "structure_fire"),
    ("There is a lot of smoke coming from the building next door", FIRE, "fire"),
    ("Forest fire near the village", FIRE, "wildfire"),
    ("Gas leak in our apartment, it smells very strong", FIRE, "gas_leak"),
    ("Someone is trapped in the elevator", FIRE, "trapped"),
    ("A child is drowning in the lake", FIRE, "drowning"),
    ("The house collapsed after the rain, people buried under rubble", FIRE, "building_collapse"),
    ("A tree fell on a car on Tran Hung Dao street", FIRE, "fallen_tree"),
    ("Car accident on the highway, two motorbikes crashed", POLICE, "vehicle_accident"),
    ("I was robbed, a man snatched my phone and ran", POLICE, "robbery"),
    ("There is a fight outside the bar, people are fighting with bottles", POLICE, "fight"),
    ("My neighbour is beating his wife, I can hear her screaming", POLICE, "domestic_violence"),
    ("A man is waving a knife at people in the market", POLICE, "threat"),
    ("Someone broke into my house while we were out", POLICE, "burglary"),
    ("Shots fired near the hotel", POLICE, "shooting"),
    ("I lost my child at the night market", POLICE, "lost_child"),
    ("My father collapsed and is not breathing", MEDICAL, "unconscious"),
    ("He is having a heart attack, severe chest pain", MEDICAL, "cardiac"),
    ("My wife is in labour, the baby is coming", MEDICAL, "childbirth"),
    ("My friend took too many pills and won't wake up", MEDICAL, "poisoning"),
    ("Dog bite, my son is bleeding", MEDICAL, "animal_bite"),
]


@pytest.mark.parametrize(("text", "category", "kind"), VI_CASES + EN_CASES)
def test_message_lands_where_the_routing_table_says(text: str, category: Category, kind: str) -> None:
    c = classify(text)
    assert (c.category, c.needs_review) == (category, False), c
    assert kind in c.kinds
    assert ROUTES[kind].primary == category


def test_the_cases_cover_every_kind_of_the_routing_table() -> None:
    device_kinds = {"medical_alarm"}  # only alarm panels send it (tested below)
    covered = {kind for _, _, kind in VI_CASES + EN_CASES} | device_kinds
    assert covered == set(ROUTES)


def test_case_list_is_large_enough() -> None:
    assert len(VI_CASES) >= 40 and len(EN_CASES) >= 15


@pytest.mark.parametrize(
    ("accented", "bare"),
    [
        ("Cháy nhà ở phố Huế", "chay nha o pho hue"),
        ("Tai nạn giao thông trên đường Láng", "tai nan giao thong tren duong lang"),
        ("Ông tôi bị đột quỵ", "ong toi bi dot quy"),
        ("Có người bị đuối nước", "co nguoi bi duoi nuoc"),
        ("Bị cướp giật túi xách", "bi cuop giat tui xach"),
        ("Rò rỉ khí gas trong bếp", "ro ri khi gas trong bep"),
        ("Em bé bị hóc xương cá", "em be bi hoc xuong ca"),
        ("Nhà đang cháy to lắm", "NHA DANG CHAY TO LAM"),
    ],
)
def test_accented_and_unaccented_text_give_the_same_category(accented: str, bare: str) -> None:
    a, b = classify(accented), classify(bare)
    assert a.category == b.category != UNKNOWN
    assert a.kinds[0] == b.kinds[0]


def test_vietnamese_and_english_agree() -> None:
    assert classify("Nhà tôi bị cháy").category == classify("My house is on fire").category == FIRE
    assert classify("Bố tôi bị đau tim").category == classify("My dad has a heart attack").category == MEDICAL


# --------------------------------------------------------------------------------- negation ----


@pytest.mark.parametrize(
    "text",
    [
        "không có cháy",
        "ko co chay",
        "Chưa cháy",
        "không phải cháy",
        "k có cháy đâu",
        "No fire",
        "it is not a fire",
        "there is no fire",
        "There's no fire here",
    ],
)
def test_negated_fire_is_not_fire(text: str) -> None:
    c = classify(text)
    assert c.category == UNKNOWN and c.needs_review
    assert c.confidence == 0.0
    negated = [e for e in c.evidence if e.negated]
    assert negated and all(e.category == FIRE for e in negated)


def test_khong_co_chay_alone_is_not_fire() -> None:
    c = classify("không có cháy")
    assert c.category != FIRE
    assert terms(c, negated=True) == {"co chay"}
    assert not terms(c)


@pytest.mark.parametrize(
    "text",
    [
        "Báo nhầm, không có cháy đâu",
        "Chuông báo cháy kêu nhưng là báo nhầm",
        "false alarm, the smoke alarm went off",
        "đây là báo động giả",
    ],
)
def test_false_alarm_does_not_count(text: str) -> None:
    c = classify(text)
    assert c.category == UNKNOWN and c.needs_review
    assert any(e.kind == "false_alarm" and e.negated for e in c.evidence)


def test_a_denied_false_alarm_is_a_real_one() -> None:
    c = classify("Không phải báo nhầm đâu, cháy thật đấy")
    assert c.category == FIRE


def test_negation_stops_at_the_clause() -> None:
    c = classify("Không có ai bị thương, nhưng nhà đang cháy")
    assert c.category == FIRE
    assert "bi thuong" in terms(c, negated=True)
    assert "injury" not in c.kinds


def test_negation_does_not_reach_far() -> None:
    c = classify("Không biết vì sao nhà bên cạnh bốc cháy")
    assert c.category == FIRE and not terms(c, negated=True)


def test_a_phrase_made_with_a_negator_is_not_negated() -> None:
    c = classify("Ông tôi không thở được")
    assert c.category == MEDICAL and "breathing_difficulty" in c.kinds


def test_english_no_does_not_negate_vietnamese() -> None:
    c = classify("no danh toi chay mau dau")  # nó đánh tôi chảy máu đầu
    assert c.category == POLICE and "assault" in c.kinds


def test_english_not_sure_is_not_a_negation() -> None:
    assert classify("Not sure what happened but the car is on fire").category == FIRE


# ------------------------------------------------------------------------ folded collisions -----


@pytest.mark.parametrize(
    "text",
    [
        "Xe chạy nhanh quá",
        "Nó chạy rồi",
        "Đến mau lên",
        "Từ từ thôi",
        "Tôi ăn chay",
        "Chờ xác nhận",
        "Dưới nhà có chợ",
    ],
)
def test_words_that_fold_like_emergency_words_are_not_evidence(text: str) -> None:
    c = classify(text)
    assert c.category == UNKNOWN and not c.evidence, c.evidence


def test_chay_of_bleeding_is_not_fire() -> None:
    c = classify("Chảy máu")
    assert c.category == MEDICAL and FIRE not in {e.category for e in c.evidence}


def test_bare_chay_is_weak_evidence() -> None:
    bare, accented = classify("chay"), classify("cháy")
    assert bare.category == UNKNOWN and bare.needs_review and terms(bare) == {"chay"}
    assert accented.category == FIRE
    assert bare.confidence < accented.confidence


def test_crossroads_is_not_a_fall() -> None:
    c = classify("Tai nạn ở ngã tư Sở")
    assert c.category == POLICE and "fall" not in c.kinds


def test_crowd_is_not_a_punch() -> None:
    assert classify("dam dong tu tap").kinds == ("disturbance",)


def test_sms_abbreviations_expand() -> None:
    c = classify("tngt o cau giay, k ai bi thuong")
    assert c.category == POLICE and "vehicle_accident" in c.kinds
    assert "injury" not in c.kinds
    assert "bi thuong" in terms(c, negated=True)


# ----------------------------------------------------------------------------------- priors -----


@pytest.mark.parametrize(
    ("number", "category"),
    [("114", FIRE), ("113", POLICE), ("115", MEDICAL), ("+84 114", FIRE), ("84-113", POLICE)],
)
def test_dialled_short_code_alone_decides(number: str, category: Category) -> None:
    c = classify("", dialled_number=number)
    assert c.category == category and not c.needs_review
    assert [(e.term, e.source) for e in c.evidence] == [(f"dialled {number[-3:]}", "dialled")]


@pytest.mark.parametrize("number", ["112", "0912345114", "1140", None])
def test_112_and_ordinary_numbers_give_no_prior(number: str | None) -> None:
    c = classify("", dialled_number=number)
    assert c.category == UNKNOWN and c.needs_review and c.evidence == ()


def test_clear_fire_text_outweighs_dialling_115() -> None:
    c = classify("Cháy nhà ở phố Huế", dialled_number="115")
    assert c.category == FIRE and not c.needs_review
    assert {(e.source, e.category) for e in c.evidence} == {("dialled", MEDICAL), ("text", FIRE)}


def test_category_hint_is_a_strong_prior() -> None:
    c = classify("", category_hint=FIRE)
    assert c.category == FIRE and c.evidence[0].source == "hint"


def test_hint_against_the_text_asks_a_person() -> None:
    c = classify("Bố tôi bị đau tim", category_hint=FIRE)
    assert c.category == UNKNOWN and c.needs_review
    assert {e.category for e in c.evidence} == {FIRE, MEDICAL}


# ------------------------------------------------------------------------------ device codes ----


@pytest.mark.parametrize(
    ("code", "category", "event_type"),
    [
        ("CID:1110", FIRE, "alarm"),
        ("CID:E110", FIRE, "alarm"),
        ("CID:110", FIRE, "alarm"),
        ("CID:1111", FIRE, "alarm"),
        ("CID:3110", FIRE, "restoral"),
        ("CID:R111", FIRE, "restoral"),
        ("CID:6110", FIRE, "alarm"),
        ("CID:1100", MEDICAL, "alarm"),
        ("CID:1121", POLICE, "alarm"),
        ("CID:1130", POLICE, "alarm"),
        ("CID:1151", FIRE, "alarm"),
        ("cid:1110 01 015", FIRE, "alarm"),
        ("CID:1602", None, "test"),
        ("CID:601", None, "test"),
        ("CID:1301", None, "trouble"),
        ("CID:3301", None, "restoral"),
        ("CID:1154", None, "alarm"),
        ("SIA:FA", FIRE, "alarm"),
        ("SIA:FH", FIRE, "restoral"),
        ("SIA:FT", FIRE, "trouble"),
        ("SIA:MA", MEDICAL, "alarm"),
        ("SIA:PA", POLICE, "alarm"),
        ("SIA:HA", POLICE, "alarm"),
        ("SIA:BA", POLICE, "alarm"),
        ("SIA:GA", FIRE, "alarm"),
        ("SIA:RP", None, "test"),
        ("SIA:YC", None, "trouble"),
        ("SIA:NULL", None, "heartbeat"),
        ("SIA:Nri1/FA12", FIRE, "alarm"),
    ],
)
def test_device_code_meaning(code: str, category: Category | None, event_type: str) -> None:
    info = device_code_info(code)
    assert info is not None
    assert (info.category, info.event_type) == (category, event_type)


@pytest.mark.parametrize("code", ["CID:999", "CID:2110", "CID:abc", "110", "XYZ:FA", "SIA:ZZ", "SIA:", ""])
def test_unknown_device_codes(code: str) -> None:
    assert device_code_info(code) is None


def test_contact_id_code_keeps_the_qualifier() -> None:
    assert device_code_info("CID:E110") == device_code_info("CID:1110")
    info = device_code_info("CID:3110")
    assert info is not None and (info.code, info.scheme, info.kind) == ("3110", "CID", "fire_alarm")


def test_smoke_detector_alarm_is_fire() -> None:
    c = classify("", device_event_code="CID:1111")
    assert c.category == FIRE and not c.needs_review and c.kinds == ("fire_alarm",)
    assert c.evidence[0].source == "device" and c.evidence[0].term == "CID 1111"


def test_medical_pendant_is_medical() -> None:
    c = classify("", device_event_code="SIA:MA")
    assert c.category == MEDICAL and c.kinds == ("medical_alarm",)


def test_device_test_gives_no_category() -> None:
    c = classify("", device_event_code="CID:1602")
    assert c.category == UNKNOWN and c.needs_review and c.confidence == 0.0
    assert [(e.category, e.weight, e.kind) for e in c.evidence] == [(UNKNOWN, 0.0, "test")]


def test_restoral_is_no_new_incident_kind() -> None:
    assert classify("", device_event_code="CID:3110").kinds == ()


# ----------------------------------------------------------------------------- result shape -----


@pytest.mark.parametrize("text", ["", "   ", "!!! ...", "xin chào", "hello"])
def test_no_evidence_is_unknown(text: str) -> None:
    c = classify(text)
    assert c == Classification(UNKNOWN, 0.0, (), needs_review=True)


def test_below_threshold_keeps_the_evidence() -> None:
    c = classify("chay")
    assert c.category == UNKNOWN and c.needs_review and 0 < c.confidence < THRESHOLD
    assert c.evidence and c.also_notify == ()
    assert classify("chay", threshold=0.3).category == FIRE


def test_evidence_names_the_decisive_words() -> None:
    c = classify("Alo, có người bị đâm chém ở chợ Long Biên, máu chảy nhiều lắm")
    assert c.category == POLICE
    decisive = max((e for e in c.evidence if e.category == POLICE), key=lambda e: e.weight)
    assert (decisive.term, decisive.kind, decisive.source) == ("bi dam chem", "stabbing", "text")
    assert "mau chay nhieu" in terms(c)


def test_casualties_follow_the_scene() -> None:
    c = classify("Cháy nhà, có người bị bỏng, bất tỉnh")
    assert c.category == FIRE and c.kinds[0] == "structure_fire"
    assert {"burns", "unconscious"} <= set(c.kinds)
    assert c.also_notify == (POLICE, MEDICAL)


def test_a_bare_ambiguous_word_notifies_nobody() -> None:
    c = classify("ten cuop chay roi")  # tên cướp chạy rồi: the robber ran away
    assert c.category == POLICE and c.also_notify == ()


def test_also_notify_never_holds_the_winner() -> None:
    c = classify("Tai nạn giao thông, có người bị thương")
    assert c.category == POLICE and c.also_notify == (MEDICAL,)


def test_confidence_is_a_share_scaled_by_strength() -> None:
    one = classify("Cháy nhà")
    two = classify("Cháy nhà, khói đen, lửa bốc cao")
    assert 0 < one.confidence < two.confidence <= 1
    assert one.confidence == pytest.approx(0.777, abs=0.001)  # 1 − e^(−3/2)


def test_repeating_a_word_adds_nothing() -> None:
    assert classify("cháy nhà cháy nhà cháy nhà").confidence == classify("cháy nhà").confidence


def test_tokeniser_agrees_with_textnorm() -> None:
    texts = [
        "Cháy nhà ở số 12/34 Hàng Bạc!!! ĐƯỜNG Đê La Thành",
        "xe máy đâm ô-tô lúc 7h30, 2 người bị thương",
        "Ｆｕｌｌｗｉｄｔｈ ﬁre ½ cha\u0301y nha\u0300 İstanbul straße",
        "emoji 🔥🔥 cháy!!",
    ]
    for text in texts:
        assert [t.word for t in _split(text)] == tokens(text)


def test_data_files_are_consistent() -> None:
    data = resources.files("intake.core").joinpath("data")
    codes = tomllib.loads(data.joinpath("device_codes.toml").read_text(encoding="utf-8"))
    rows = [*codes["cid"].values(), *codes["sia"].values()]
    alarm_kinds = {row["kind"] for row in rows if "category" in row and row["type"] == "alarm"}
    assert alarm_kinds <= set(ROUTES)
    for route in ROUTES.values():
        assert route.primary not in route.also


def test_a_two_hundred_word_report_is_classified_from_all_of_it() -> None:
    """(Its speed is measured by `intake bench ingest`, not asserted here.)"""
    text = " ".join(["Cháy nhà ở số 5 ngõ 12 phố Huế, khói đen, có người mắc kẹt, không ai bị thương"] * 12)
    assert len(text.split()) >= 200
    result = classify(text)
    assert result.category == Category.FIRE and not result.needs_review
