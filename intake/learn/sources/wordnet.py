"""English examples from WordNet 3.0: the words English has for each kind of incident, and what they mean.

Why: a report names its incident in everyday words ("blaze", "mugging", "pileup", "heart attack", "he was
knifed") that a clinical vocabulary lacks. WordNet groups such words into synsets with a gloss, and arranges the
synsets under more general ones, so a few well-chosen synsets per kind ("robbery: larceny by threat of violence")
bring every more specific word below them ("armed robbery", "heist", "highjacking", "mugging", ...). Debian's
package `wordnet-base` ships the Princeton database files; this module parses data.noun, data.verb and their
index files itself (the format is wndb(5)), so the corpus build needs no NLTK and no download.

How: `SYNSETS` lists, as data, the synsets chosen for each kind, nouns and verbs, by offset ("07302836-n"), each
with its first lemma (checked on load, so a different WordNet release fails loudly) and a comment giving its gloss:
the senses were picked by their gloss, not by their spelling. Each chosen synset and (unless marked ALONE) all its
hyponyms, transitively (instance hyponyms, which are proper names, are left out), give their lemmas, underscores
read as spaces, and their gloss: the definition and each quoted example sentence as separate examples. A row with
kind None prunes a subtree. A synset below two chosen ones belongs to the nearer; a text that two kinds give goes
to the firmer claim (`_owner`), and is left out on a tie. Each kind is capped at `CAP` examples.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "ALL",
    "ALONE",
    "CAP",
    "DEBIAN_PACKAGE",
    "SYNSETS",
    "Synset",
    "assign",
    "examples",
    "load_index",
    "load_synsets",
    "package_version",
]

#: The Debian package that ships the database, and where it puts it.
DEBIAN_PACKAGE: Final = "wordnet-base"
WORDNET_DIR: Final = Path("/usr/share/wordnet")

#: At most this many examples per kind.
CAP: Final = 400


#: The lexicographer files (lexnames(5)) of animals and plants.
_TAXON_FILES: Final = frozenset({"05", "20"})

#: The parts of speech read, by their letter in a synset id and in the file names (data.noun, index.verb, ...).
PARTS: Final = {"n": "noun", "v": "verb"}


@dataclass(frozen=True, slots=True)
class Synset:
    id: str  # "07302836-n": the byte offset of its line in data.<part>, and its part of speech
    lemmas: tuple[str, ...]  # as written in the file, underscores and all
    hypernyms: tuple[str, ...]  # ids
    hyponyms: tuple[str, ...]  # ids; not instance hyponyms
    gloss: str
    taxon: bool = False  # in noun.animal or noun.plant, whose capitalized lemmas are Latin names of species

    @property
    def source(self) -> str:
        return f"wordnet:{self.id}"


#: A row's last field: take the synset and all its hyponyms, or the synset alone (its hyponyms are off the point).
ALL: Final = True
ALONE: Final = False

#: (synset id, its first lemma, kind or None, ALL/ALONE), chosen by gloss; the comment quotes or sums up the gloss.
#: A row with kind None prunes that synset and what is below it (unless a nearer row claims it).
SYNSETS: Final[tuple[tuple[str, str, str | None, bool], ...]] = (
    # --- fire
    ("07302836-n", "fire", "fire", ALL),  # the event of something burning (often destructive)
    ("13480848-n", "fire", "fire", ALL),  # the process of combustion ... producing heat and light and (often) smoke
    ("13556893-n", "smoke", "fire", ALL),  # a hot vapor containing fine particles of carbon being produced by
    ("00378296-n", "arson", "fire", ALL),  # malicious burning to destroy property
    ("09810707-n", "arsonist", "fire", ALL),  # a criminal who illegally sets fire to property
    ("11457944-n", "firestorm", "fire", ALL),  # violent winds drawn into the column of hot air over a bombed area
    ("00378664-v", "burn", "fire", ALL),  # destroy by fire ("they burned the house")
    ("00379154-v", "cremate", None, ALL),  # ... but not cremating a corpse
    ("00377002-v", "burn", "fire", ALL),  # undergo combustion: burn down, smoulder, flare up, blaze
    ("00582743-v", "scorch", "burns", ALL),  # sear, singe: become superficially burned (a burn, not a fire)
    ("03347731-n", "firetrap", "structure_fire", ALL),  # a building that would be hard to escape from if it caught fire
    ("07303466-n", "brush_fire", "wildfire", ALL),  # an uncontrolled fire that consumes brush and shrubs and bushes
    ("07303839-n", "forest_fire", "wildfire", ALL),  # an uncontrolled fire in a wooded area
    ("07303988-n", "grassfire", "wildfire", ALL),  # an uncontrolled fire in a grassy area
    ("07304753-n", "wildfire", "wildfire", ALL),  # a raging and rapidly spreading conflagration
    ("07303153-n", "backfire", "wildfire", ALL),  # a fire set to slow an approaching forest fire or grassfire
    ("07303335-n", "bonfire", "wildfire", ALL),  # a large outdoor fire lighted as a signal or in celebration
    ("07303585-n", "campfire", "wildfire", ALL),  # a small outdoor fire for warmth or cooking
    ("07265276-n", "fire_alarm", "fire_alarm", ALL),  # a shout or bell to warn that fire has broken out
    ("03343737-n", "fire_alarm", "fire_alarm", ALL),  # an alarm that is tripped off by fire or smoke (smoke alarm)
    ("03344305-n", "fire_bell", "fire_alarm", ALL),  # a bell rung to give a fire alarm
    # --- explosion
    ("07308563-n", "explosion", "explosion", ALL),  # a violent release of energy caused by a chemical or nuclear
    ("07408796-n", "big_bang", None, ALL),  # ... but not the cosmology,
    ("07409255-n", "inflation", None, ALL),
    ("07408621-n", "backfire", None, ALL),  # nor an engine's backfire,
    ("07408965-n", "blowback", None, ALL),  # nor a gun's blowback
    ("00377364-n", "explosion", "explosion", ALL),  # the act of exploding or bursting
    ("07383696-n", "explosion", "explosion", ALL),  # the noise caused by an explosion
    ("02866578-n", "bomb", "explosion", ALL),  # an explosive device fused to explode under specific conditions
    ("03348454-n", "firework", "explosion", ALL),  # a device with an explosive that burns at a low rate
    ("00306723-v", "explode", "explosion", ALL),  # cause to burst with a violent release of energy (detonate, blow up)
    ("00306298-v", "detonate", "explosion", ALL),  # burst and release energy ("the bomb detonated at noon")
    ("00306017-v", "explode", "explosion", ALL),  # burst outward, usually with noise
    ("00307568-v", "erupt", None, ALL),  # ... but not a volcano's eruption
    # --- gas, carbon monoxide, chemicals
    ("07436661-n", "escape", "gas_leak", ALL),  # leak, leakage: the discharge of a fluid from a container
    ("00529759-v", "leak", "gas_leak", ALL),  # enter or escape through a hole or crack ("gas leaked into the basement")
    ("14960090-n", "natural_gas", "gas_leak", ALL),  # a fossil fuel in the gaseous state; used for cooking and heating
    ("14878483-n", "liquefied_petroleum_gas", "gas_leak", ALL),  # bottled gas: propane or butane under pressure
    ("14691686-n", "propane", "gas_leak", ALL),  # colorless gas found in natural gas and petroleum; used as a fuel
    ("14685017-n", "butane", "gas_leak", ALL),  # occurs in natural gas; used in the manufacture of fuels
    ("14685475-n", "coal_gas", "gas_leak", ALL),  # gas made from coal and used for heating and lighting (town gas)
    ("03423966-n", "gas_line", "gas_leak", ALL),  # a pipeline used to transport natural gas
    ("03424103-n", "gas_main", "gas_leak", ALL),  # a main that distributes gas
    ("14797641-n", "carbon_monoxide", "carbon_monoxide", ALL),  # an odorless very poisonous gas from incomplete
    ("14510401-n", "carbon_monoxide_poisoning", "carbon_monoxide", ALL),  # toxic condition from inhaling carbon
    ("00329619-n", "spill", "chemical_spill", ALL),  # spillage, release: the act of allowing a fluid to escape
    ("15049594-n", "spill", "chemical_spill", ALL),  # liquid that is spilled
    ("03844965-n", "oil_slick", "chemical_spill", ALL),  # a film of oil floating on water
    ("14858637-n", "toxic_waste", "chemical_spill", ALL),  # poisonous waste materials
    ("14993378-n", "poison_gas", "chemical_spill", ALL),  # a gas that is poisonous to breathe or contact
    ("15067877-n", "tear_gas", "chemical_spill", ALL),  # a gas that makes the eyes fill with tears
    ("14634591-n", "chlorine", "chemical_spill", ALL),  # a heavy yellow irritating toxic gas
    ("14743582-n", "ammonia", "chemical_spill", ALL),  # a pungent gas compounded of nitrogen and hydrogen
    # --- electricity
    ("03995535-n", "power_line", "electrical_hazard", ALL),  # cable used to distribute electricity
    ("03272696-n", "electric_main", "electrical_hazard", ALL),  # a main that distributes electricity
    ("04204755-n", "short_circuit", "electrical_hazard", ALL),  # accidental contact between two points in a circuit
    ("11511523-n", "discharge", "electrical_hazard", ALL),  # spark, arc: electrical conduction through a gas
    ("11440802-n", "corona_discharge", None, ALL),  # ... but not St. Elmo's fire
    ("04471315-n", "transformer", "electrical_hazard", ALL),  # changes alternating current of one voltage to another
    ("03066232-n", "coil", None, ALL),  # ... but not a spark-plug coil,
    ("04540397-n", "voltage_regulator", None, ALL),
    ("14291823-n", "electric_shock", "electrocution", ALL),  # trauma caused by the passage of electric current through
    ("00228078-n", "electrocution", "electrocution", ALL),  # killing by electric shock
    ("02485135-v", "electrocute", "electrocution", ALL),  # kill by electric shock
    ("11475279-n", "lightning", "electrocution", ALL),  # abrupt electric discharge from cloud to earth
    # --- rescue: trapped, water, collapse, nature
    ("01207167-v", "trap", "trapped", ALL),  # pin, immobilize: hold fast ("the child was pinned under the fallen tree")
    ("00096720-n", "search_and_rescue_mission", "trapped", ALL),  # a rescue mission to search for survivors
    ("03281145-n", "elevator", "trapped", ALL),  # lift: a platform or cage raised and lowered in a vertical shaft
    ("03255322-n", "dumbwaiter", None, ALL),  # ... but not the small ones for goods
    ("00360501-v", "drown", "drowning", ALL),  # die from being submerged in water
    ("00479060-v", "drown", "drowning", ALL),  # kill by submerging in water
    ("07364115-n", "submergence", "drowning", ALL),  # submersion: sinking until covered completely with water
    ("07364434-n", "dip", None, ALL),  # ... but not a brief dip
    ("00093874-n", "lifesaving", "drowning", ALL),  # saving the lives of drowning persons
    ("07353075-n", "shipwreck", "drowning", ALL),  # an accident that destroys a ship at sea; capsizing
    ("07361128-n", "collapse", "building_collapse", ALL),  # a natural event of something suddenly falling down or
    ("07365673-n", "gravitational_collapse", None, ALL),  # ... but not a star's, nor a fiasco
    ("07365432-n", "debacle", None, ALL),
    ("01989071-v", "collapse", "building_collapse", ALL),  # fall in, cave in, give way ("the wall collapsed")
    ("00305846-v", "implode", None, ALL),  # ... but not a bottle imploding,
    ("01279204-v", "buckle", None, ALL),  # ... but not knees buckling, flopping into a chair, surf breaking, slumping
    ("01972867-v", "flop", None, ALL),
    ("01972994-v", "break", None, ALL),
    ("01988904-v", "slump", None, ALL),
    ("02041895-v", "crumble", "building_collapse", ALL),  # fall apart ("the building crumbled after the explosion")
    ("07428954-n", "earthquake", "building_collapse", ALL),  # shaking and vibration at the surface of the earth
    ("11454591-n", "flood", "flood", ALL),  # the rising of a body of water and its overflowing onto dry land
    ("11455386-n", "Noah's_flood", None, ALL),  # ... but not the Biblical one
    ("00217152-v", "flood", "flood", ALL),  # cover with liquid, usually water ("the swollen river flooded the village")
    ("00452220-v", "flood", "flood", ALL),  # become filled to overflowing ("our basement flooded")
    ("02072177-v", "overflow", "flood", ALL),  # flow or run over (a limit or brim)
    ("02072412-v", "geyser", None, ALL),  # ... but not geysers, nor waves lapping the shore
    ("00217576-v", "lave", None, ALL),
    ("07349299-n", "tsunami", "flood", ALL),  # a cataclysm resulting from a destructive sea wave
    ("07348870-n", "tidal_wave", "flood", ALL),  # an unusual (and often destructive) rise of water along the seashore
    ("07405411-n", "landslide", "landslide", ALL),  # a slide of a large mass of dirt and rock down a mountain
    ("07405137-n", "avalanche", "landslide", ALL),  # a slide of large masses of snow and ice and mud down a mountain
    ("13104059-n", "tree", "fallen_tree", ALONE),  # a tall perennial woody plant (not its thousand species)
    ("13163803-n", "limb", "fallen_tree", ALL),  # tree branch: one of the main branches of a tree
    ("13165727-n", "bough", "fallen_tree", ALL),  # any of the larger branches of a tree
    ("13163553-n", "deadwood", "fallen_tree", ALL),  # a branch or a part of a tree that is dead
    ("01726692-n", "snake", "animal_hazard", ALL),  # limbless scaly elongate reptile; some are venomous
    ("09218159-n", "beehive", "animal_hazard", ALL),  # a structure that provides a natural habitation for bees
    ("02822865-n", "beehive", "animal_hazard", ALL),  # a man-made receptacle that houses a swarm of bees
    ("09475044-n", "wasp's_nest", "animal_hazard", ALL),  # habitation for wasps or hornets
    ("02206856-n", "bee", "animal_hazard", ALL),  # hairy-bodied insects including social and solitary species
    ("02212062-n", "wasp", "animal_hazard", ALL),  # social or solitary hymenopterans with a formidable sting
    ("02122580-n", "stray", "animal_hazard", ALL),  # an animal that has strayed (especially a domestic animal)
    # --- traffic
    ("07301543-n", "collision", "vehicle_accident", ALL),  # an accident resulting from violent impact of a moving
    ("07301950-n", "crash", "vehicle_accident", ALL),  # wreck: a serious accident (usually involving vehicles)
    ("01561837-v", "crash", "vehicle_accident", ALL),  # ram: undergo damage on impact
    ("01561161-v", "collide", "vehicle_accident", ALL),  # crash together with violent impact ("the cars collided")
    ("01237106-v", "rear-end", "vehicle_accident", ALL),  # collide with the rear end of
    ("01237249-v", "broadside", "vehicle_accident", ALL),  # collide with the broad side of
    ("00106960-v", "run_down", "vehicle_accident", ALL),  # run over: injure or kill by running over, as with a vehicle
    ("09398076-n", "pothole", "traffic_hazard", ALL),  # a pit or hole in a road surface
    ("04096848-n", "roadblock", "traffic_hazard", ALL),  # barricade: a barrier set up on a street or road
    ("14857897-n", "debris", "traffic_hazard", ALL),  # rubble: the remains of something destroyed or broken up
    ("14858099-n", "slack", None, ALL),  # ... but not coal dust
    ("03359950-n", "flat", "traffic_hazard", ALL),  # flat tire: a deflated pneumatic tire
    ("07318618-n", "blowout", "traffic_hazard", ALL),  # a sudden malfunction of a part ("the tire had a blowout")
    ("14915462-n", "black_ice", "traffic_hazard", ALL),  # a nearly invisible, very hazardous coating of ice on a road
    ("08183541-n", "traffic_jam", "traffic_hazard", ALL),  # vehicles blocking one another until they can scarcely move
    ("07421580-n", "brake_failure", "traffic_hazard", ALL),  # brakes fail to stop a vehicle
    ("07421669-n", "engine_failure", "traffic_hazard", ALL),  # engine does not run
    ("01759009-n", "roadkill", "traffic_hazard", ALL),  # the dead body of an animal killed on a road by a vehicle
    # --- violence
    ("01170962-n", "fight", "fight", ALL),  # the act of fighting ("a fight broke out at the hockey game")
    ("01171644-n", "fencing", None, ALL),  # ... but not the sport, in-fighting, outdoing, dog fights,
    ("01172031-n", "in-fighting", None, ALL),
    ("01176219-n", "beating", None, ALL),
    ("00971802-n", "dogfight", None, ALL),
    ("01172252-n", "shock", None, ALL),  # ... nor armies meeting in battle
    ("01504498-v", "scuffle", "fight", ALL),  # tussle: fight or struggle in a confused way at close quarters
    ("00774362-v", "brawl", "fight", ALL),  # wrangle: quarrel noisily, angrily or disruptively
    ("01090353-v", "contend", "fight", ALONE),  # fight, struggle: be engaged in a fight (not its 80 kinds of contest)
    ("00767826-n", "assault", "assault", ALL),  # a threatened or attempted physical attack by someone able to cause
    ("00772550-n", "resisting_arrest", None, ALL),  # ... but not resisting arrest
    ("00773814-n", "attack", "assault", ALL),  # attempt: the act of attacking ("attacks on women increased last year")
    ("09821253-n", "attacker", "assault", ALL),  # aggressor, assailant, assaulter: someone who attacks
    ("09826074-n", "avenger", None, ALL),  # ... but not avengers, iconoclasts, night riders
    ("10196725-n", "iconoclast", None, ALL),
    ("10358124-n", "night_rider", None, ALL),
    ("01120087-v", "assail", "assault", ALL),  # assault, set on, attack: attack someone physically
    ("01121070-v", "reassail", None, ALL),  # ... but not fears reassailing, or desecration
    ("02568065-v", "desecrate", None, ALL),
    ("01397228-v", "beat", "assault", ALL),  # beat up, work over: give a beating to
    ("01420946-v", "spank", None, ALL),  # ... but not spanking
    ("09879297-n", "bully", "assault", ALONE),  # tough, hooligan, ruffian: a cruel and brutal fellow (not Teddy boys)
    ("01400062-v", "hit", "assault", ALL),  # deal a blow to, with the hand or an instrument
    ("01237617-v", "clap", None, ALL),  # ... but not clapping, baseball, swatting flies
    ("01413191-v", "bat", None, ALL),
    ("01413454-v", "bat", None, ALL),
    ("01413579-v", "bat", None, ALL),
    ("01413935-v", "cut", None, ALL),
    ("01396955-v", "swat", None, ALL),
    ("01400874-v", "bean", None, ALL),
    ("01401790-v", "smash", None, ALL),
    ("01173965-n", "stab", "stabbing", ALL),  # a strong blow with a knife or other sharp pointed instrument
    ("01174251-n", "lunge", None, ALL),  # ... but not fencing
    ("01174645-n", "remise", None, ALL),
    ("01176540-n", "knife_fight", "stabbing", ALL),  # fighting with knives
    ("10644179-n", "stabber", "stabbing", ALL),  # someone who stabs another person
    ("10609092-n", "slasher", "stabbing", ALL),  # someone who slashes another person
    ("01231670-v", "knife", "stabbing", ALL),  # stab: use a knife on ("the victim was knifed to death")
    ("00225150-n", "shooting", "shooting", ALL),  # killing someone by gunfire; drive-by shooting
    ("00225484-n", "wing_shooting", None, ALL),  # ... but not shooting game birds
    ("00123783-n", "gunfire", "shooting", ALL),  # gunshot: the act of shooting a gun
    ("00124617-n", "gunfight", "shooting", ALL),  # gunplay, shootout: a fight involving shooting small arms
    ("10152083-n", "gunman", "shooting", ALL),  # a professional killer who uses a gun (shooter, triggerman)
    ("01137156-v", "shoot", "shooting", ALL),  # hit with a missile from a weapon (gun down, kneecap)
    ("01137073-v", "grass", None, ALL),  # ... but not shooting down birds
    ("02484570-v", "shoot", "shooting", ALL),  # kill by firing a missile
    ("02484771-v", "flight", None, ALL),
    ("01134799-v", "blast", "shooting", ALL),  # shoot: fire a shot ("the gunman blasted away"); open fire
    ("01135237-v", "overshoot", None, ALL),
    ("01155325-v", "pump", None, ALL),
    ("00220023-n", "homicide", "murder", ALL),  # the killing of a human being by another human being
    ("00220522-n", "murder", "murder", ALL),  # unlawful premeditated killing of a human being by a human being
    ("10338707-n", "murderer", "murder", ALL),  # a criminal who commits homicide
    ("02482425-v", "murder", "murder", ALL),  # kill intentionally and with premeditation
    ("00775460-n", "abduction", "kidnapping", ALL),  # the criminal act of capturing and carrying away by force
    ("00775702-n", "kidnapping", "kidnapping", ALL),  # snatch: capturing and carrying away a person against their will
    ("01471061-v", "kidnap", "kidnapping", ALL),  # abduct, snatch: take someone away against their will
    ("10230801-n", "kidnapper", "kidnapping", ALL),  # abductor: someone who unlawfully seizes and detains a victim
    ("10187557-n", "hostage", "kidnapping", ALL),  # a prisoner who is held by one party to insure terms are met
    ("00965718-n", "domestic_violence", "domestic_violence", ALL),  # violence toward your spouse or domestic partner
    ("00420218-n", "child_abuse", "domestic_violence", ALL),  # the physical or emotional or sexual mistreatment of
    ("00774107-n", "sexual_assault", "sexual_assault", ALL),  # the crime of causing another to engage in a sexual act
    ("02567519-v", "rape", "sexual_assault", ALL),  # force someone to have sex against their will
    ("02569495-v", "molest", "sexual_assault", ALL),  # harass or assault sexually
    ("10507230-n", "raper", "sexual_assault", ALL),  # rapist
    ("00772253-n", "indecent_exposure", "sexual_assault", ALL),  # vulgar and offensive nakedness in a public place
    ("10070942-n", "exhibitionist", "sexual_assault", ALL),  # flasher
    ("06733476-n", "threat", "threat", ALL),  # declaration of an intention to inflict harm ("his threat to kill me")
    ("06733682-n", "commination", None, ALL),  # ... but not divine punishment
    ("00871423-v", "threaten", "threat", ALL),  # utter intentions of injury
    ("00871641-v", "offer", None, ALL),  # ... but not offering to leave a committee
    ("02142538-v", "brandish", "threat", ALL),  # exhibit aggressively ("brandish a sword")
    ("01222477-n", "bullying", "threat", ALL),  # intimidation: intimidating a weaker person to make them do something
    # --- property and fraud
    ("00781685-n", "robbery", "robbery", ALL),  # larceny by threat of violence; armed robbery, holdup, hijacking
    ("00966599-n", "looting", "robbery", ALL),  # plundering during riots or in wartime
    ("00774009-n", "mugging", "robbery", ALL),  # assault with intent to rob
    ("10534586-n", "robber", "robbery", ALL),  # a thief who steals from someone by threatening violence; mugger
    ("10180923-n", "holdup_man", "robbery", ALL),  # an armed thief
    ("02321409-v", "rob", "robbery", ALL),  # take something away by force; hold up, stick up, mug
    ("00780889-n", "larceny", "theft", ALL),  # theft, stealing: taking something from someone unlawfully
    ("00070077-n", "breach_of_trust_with_fraudulent_intent", None, ALL),  # ... but not breach of trust,
    ("00782629-n", "biopiracy", None, ALL),
    ("00784271-n", "skimming", None, ALL),  # ... nor tax evasion
    ("10707804-n", "thief", "theft", ALL),  # a criminal who takes property belonging to someone else
    ("10144571-n", "graverobber", None, ALL),  # ... but not grave robbers or plagiarists
    ("10144730-n", "graverobber", None, ALL),
    ("10437262-n", "plagiarist", None, ALL),
    ("02321775-v", "steal", "theft", ALL),  # take without the owner's consent ("someone stole my wallet on the train")
    ("02292553-v", "embezzle", "fraud", ALL),  # ... embezzling is a fraud
    ("10051337-n", "embezzler", "fraud", ALL),
    ("02277915-v", "pirate", None, ALL),  # ... but not copying or plagiarizing, nor hustling
    ("02278079-v", "plagiarize", None, ALL),
    ("02345306-v", "loot", None, ALL),
    ("02322614-v", "hustle", None, ALL),
    ("00785045-n", "burglary", "burglary", ALL),  # entering a building unlawfully with intent to steal; break-in
    ("09880741-n", "burglar", "burglary", ALL),  # a thief who enters a building with intent to steal
    ("10546062-n", "safebreaker", "burglary", ALL),  # a thief who breaks open safes
    ("02571511-v", "burglarize", "burglary", ALL),  # commit a burglary; enter and rob a dwelling
    ("10486679-n", "prowler", "suspicious_person", ALL),  # someone who prowls or sneaks about, usually unlawfully
    ("10270232-n", "loiterer", "suspicious_person", ALL),  # someone who lingers aimlessly in or about a place
    ("10213652-n", "intruder", "suspicious_person", ALL),  # someone who intrudes on the property of another
    ("09862479-n", "boarder", None, ALL),  # ... but not ship boarders, gatecrashers, invaders, strangers
    ("10121952-n", "gatecrasher", None, ALL),
    ("10205714-n", "infiltrator", None, ALL),
    ("10214062-n", "invader", None, ALL),
    ("10413688-n", "penetrator", None, ALL),
    ("10495756-n", "pusher", None, ALL),
    ("10661002-n", "stranger", None, ALL),
    ("10681383-n", "suspect", "suspicious_person", ALL),  # someone who is under suspicion
    ("01918322-v", "prowl", "suspicious_person", ALL),  # move about in a predatory manner
    ("02640053-v", "lurk", "suspicious_person", ALL),  # skulk: lie in wait, behave in a sneaky and secretive manner
    ("02004027-v", "haunt", "suspicious_person", ALL),  # stalk: follow stealthily ("her ex-boyfriend stalked her")
    ("00769092-n", "fraud", "fraud", ALL),  # intentional deception resulting in injury to another person
    ("00769401-n", "barratry", None, ALL),  # ... but not the legal categories of fraud
    ("00777679-n", "election_fraud", None, ALL),
    ("00777806-n", "constructive_fraud", None, ALL),
    ("00778017-n", "extrinsic_fraud", None, ALL),
    ("00778213-n", "fraud_in_fact", None, ALL),
    ("00778575-n", "fraud_in_the_factum", None, ALL),
    ("00778809-n", "fraud_in_the_inducement", None, ALL),
    ("00779035-n", "intrinsic_fraud", None, ALL),
    ("00777324-n", "raid", None, ALL),  # ... nor speculators' raids, nor police sting operations
    ("00779599-n", "sting_operation", None, ALL),
    ("00784388-n", "extortion", "fraud", ALL),  # the felonious act of extorting money (as by threats of violence)
    ("00776732-n", "embezzlement", "fraud", ALL),  # fraudulent appropriation of funds or property entrusted to you
    ("00768921-n", "forgery", "fraud", ALL),  # criminal falsification ... with intent to defraud
    ("09955015-n", "swindler", "fraud", ALL),  # a person who swindles you by deception or fraud (con man, scammer)
    ("02572119-v", "victimize", "fraud", ALL),  # swindle, defraud, scam, con: deprive of by deceit
    ("02241639-v", "extort", "fraud", ALL),  # obtain through intimidation (blackmail)
    # --- public order, drugs, people
    ("00771713-n", "disorderly_conduct", "disturbance", ALL),  # breach of the peace, disturbance of the peace
    ("13977366-n", "disturbance", "disturbance", ALL),  # commotion: a disorderly outburst or tumult
    ("13977732-n", "convulsion", None, ALL),  # ... but not upheavals, figurative earthquakes, news stirs, storms
    ("13977870-n", "earthquake", None, ALL),
    ("13978166-n", "stir", None, ALL),
    ("13978344-n", "storm", None, ALL),
    ("13978601-n", "storm_center", None, ALL),
    ("00553823-n", "commotion", "disturbance", ALL),  # ruckus, rumpus, tumult: the act of making a noisy disturbance
    ("00555138-n", "bustle", None, ALL),  # ... but not bustle, fuss, stir,
    ("13978914-n", "combustion", None, ALL),  # nor "combustion" as excitement
    ("13977184-n", "rowdiness", "disturbance", ALL),  # rowdy behavior
    ("01170502-n", "riot", "disturbance", ALL),  # a public act of violence by an unruly mob
    ("13977043-n", "rioting", "disturbance", ALL),  # a state of disorder involving group violence
    ("05720248-n", "noise", "disturbance", ALL),  # racket: sound that is a disagreeable auditory experience
    ("14018567-n", "drunkenness", "disturbance", ALL),  # a temporary state from excessive consumption of alcohol
    ("10037080-n", "drunk", "disturbance", ALL),  # someone who is intoxicated
    ("01114055-n", "drug_traffic", "drugs", ALL),  # traffic in illegal drugs
    ("10495555-n", "pusher", "drugs", ALL),  # drug dealer: an unlicensed dealer in illegal drugs
    ("00947923-n", "substance_abuse", "drugs", ALL),  # drug abuse: excessive use of drugs
    ("00948064-n", "alcohol_abuse", None, ALL),  # ... but not alcohol
    ("10035952-n", "drug_addict", "drugs", ALL),  # junkie: a narcotics addict
    ("14064408-n", "drug_addiction", "drugs", ALL),  # an addiction to a drug (especially a narcotic drug)
    ("03248958-n", "drug_of_abuse", "drugs", ALL),  # street drug: a drug taken for nonmedicinal reasons
    ("04442831-n", "tobacco", None, ALL),  # ... but not tobacco or alcoholic drinks
    ("07884567-n", "alcohol", None, ALL),
    ("03713736-n", "major_tranquilizer", None, ALL),  # ... nor antipsychotics
    ("03808564-n", "narcotic", "drugs", ALL),  # a drug that produces numbness or stupor; heroin, opium ...
    ("10763075-n", "waif", "lost_child", ALL),  # street child: a homeless child, especially one forsaken or orphaned
    ("10107883-n", "foundling", "lost_child", ALL),  # abandoned infant: a child whose parents are unknown
    ("00053609-n", "disappearance", "missing_person", ALL),  # the act of leaving secretly or without explanation
    ("05218119-n", "cadaver", "body_found", ALL),  # corpse, stiff, remains: the dead body of a human being
    ("05217859-n", "body", "body_found", ALONE),  # dead body ("they found the body in the lake"), not carcasses
    ("02105100-v", "jump", "jumper", ALL),  # leap, jump off: jump down from an elevated point
    # --- medical
    ("05678932-n", "unconsciousness", "unconscious", ALL),  # a state lacking normal awareness of the self or
    ("05679305-n", "automatic_pilot", None, ALL),  # ... but not autopilot, unawareness, trances, insensibility
    ("05679611-n", "unknowingness", None, ALL),
    ("05680684-n", "electrosleep", None, ALL),
    ("05680982-n", "insensibility", None, ALL),
    ("05681334-n", "trance", None, ALL),
    ("05681543-n", "semitrance", None, ALL),
    ("07478318-n", "faint", "unconscious", ALL),  # swoon, syncope: a spontaneous loss of consciousness
    ("00023646-v", "faint", "unconscious", ALL),  # pass out, swoon: from weakness, distress, loss of blood to the brain
    ("00023868-v", "zonk_out", "unconscious", ALL),  # pass out, black out: lose consciousness due to a sudden trauma
    ("14112855-n", "heart_attack", "cardiac", ALL),  # a sudden severe instance of abnormal heart function
    ("14113021-n", "myocardial_infarction", "cardiac", ALL),  # destruction of heart tissue from obstructed blood supply
    ("14024581-n", "asystole", "cardiac", ALL),  # cardiac arrest: failure of the ventricles of the heart to contract
    ("14108039-n", "angina_pectoris", "cardiac", ALL),  # paroxysms of chest pain due to reduced oxygen to the heart
    ("14325902-n", "chest_pain", "cardiac", ALL),  # pain in the chest
    ("14110674-n", "cardiac_arrhythmia", "cardiac", ALL),  # an abnormal rate of muscle contractions in the heart
    ("14335097-n", "palpitation", "cardiac", ALL),  # a rapid and irregular heart beat
    ("14112255-n", "heart_failure", "cardiac", ALL),  # inability of the heart to pump enough blood
    ("14082303-n", "stroke", "stroke", ALL),  # apoplexy, CVA: loss of consciousness when a blood vessel in the brain
    ("14166589-n", "transient_ischemic_attack", "stroke", ALL),  # brief episode of insufficient blood supply to the
    ("14370391-n", "cerebral_hemorrhage", "stroke", ALL),  # bleeding from a ruptured blood vessel in the brain
    ("14288561-n", "hemorrhagic_stroke", "stroke", ALL),  # stroke caused by the rupture of a blood vessel
    ("14369744-n", "dyspnea", "breathing_difficulty", ALL),  # difficult or labored respiration; shortness of breath
    ("14145911-n", "asthma", "breathing_difficulty", ALL),  # asthma attack: respiratory disorder with wheezing
    ("14369408-n", "apnea", "breathing_difficulty", ALL),  # transient cessation of respiration
    ("14310292-n", "sudden_infant_death_syndrome", None, ALL),  # ... but not cot death
    ("00836407-n", "wheeze", "breathing_difficulty", ALL),  # breathing with a husky or whistling sound
    ("00833870-n", "hyperventilation", "breathing_difficulty", ALL),  # increased depth and rate of breathing
    ("14043882-n", "suffocation", "breathing_difficulty", ALL),  # asphyxiation: the condition of being deprived of
    ("14042423-n", "asphyxia", "breathing_difficulty", ALL),  # insufficient oxygen and carbon dioxide exchange
    ("00005526-v", "pant", "breathing_difficulty", ALL),  # gasp, puff, heave: breathe noisily, as when exhausted
    ("14058252-n", "choking", "choking", ALL),  # a condition caused by blocking the airways (as with food)
    ("00077698-v", "gag", "choking", ALL),  # choke: struggle for breath ("he swallowed a fishbone and gagged")
    ("00833119-n", "Heimlich_maneuver", "choking", ALL),  # an emergency procedure to help someone who is choking
    ("14288235-n", "bleeding", "bleeding", ALL),  # hemorrhage: the flow of blood from a ruptured blood vessel
    ("00074834-v", "shed_blood", "bleeding", ALL),  # bleed, hemorrhage: lose blood from one's body
    ("00062203-v", "menstruate", None, ALL),  # ... but not menstruating
    ("14285662-n", "injury", "injury", ALL),  # hurt, harm, trauma: any physical damage to the body
    ("07313636-n", "injury", "injury", ALL),  # accidental injury: an accident that results in physical damage or hurt
    ("00403783-n", "wound", "injury", ALL),  # wounding: the act of inflicting a wound
    ("00069879-v", "injure", "injury", ALL),  # wound: cause injuries or bodily harm to
    ("00070736-v", "calk", None, ALL),  # ... but not torture, trauma in general, injuring with a calk
    ("00071178-v", "torture", None, ALL),
    ("00090186-v", "traumatize", None, ALL),
    ("00102586-v", "harm", None, ALL),
    ("14295389-n", "hernia", None, ALL),  # ... nor hernias, stigmata, foreign matter entering a vessel
    ("14286435-n", "stigmata", None, ALL),
    ("14294861-n", "intravasation", None, ALL),
    ("00076884-n", "spill", "fall", ALL),  # tumble, fall: a sudden drop from an upright position
    ("01900426-v", "stumble", "fall", ALL),  # trip: miss a step and fall or nearly fall
    ("01972316-v", "fall", "fall", ALL),  # descend in free fall ("the unfortunate hiker fell into a crevasse")
    ("14289590-n", "burn", "burns", ALL),  # an injury caused by exposure to heat or chemicals or radiation
    ("00196758-v", "scald", "burns", ALL),  # burn with a hot liquid or steam
    ("14509712-n", "poisoning", "poisoning", ALL),  # the physiological state produced by a poison
    ("00224738-n", "poisoning", "poisoning", ALL),  # the act of giving poison to a person with the intent to kill
    ("15032376-n", "poison", "poisoning", ALL),  # any substance that causes injury or illness or death
    ("14068685-n", "food_poisoning", "poisoning", ALL),  # illness caused by poisonous or contaminated food
    ("01323356-v", "poison", "poisoning", ALL),  # kill with poison
    ("00088339-v", "poison", "poisoning", ALL),  # administer poison to
    ("00085353-v", "overdose", "overdose", ALL),  # dose too heavily ("the rock star overdosed")
    ("14081941-n", "seizure", "seizure", ALL),  # ictus: a sudden occurrence of a disease ("an epileptic seizure")
    ("14087096-n", "raptus_hemorrhagicus", None, ALL),  # ... but not a seizure caused by haemorrhage
    ("14082595-n", "convulsion", "seizure", ALL),  # violent uncontrollable contractions of muscles
    ("14086143-n", "epilepsy", "seizure", ALL),  # disorder with loss of consciousness and convulsions
    ("01890810-v", "convulse", "seizure", ALL),  # thrash: move about violently ("the feverish patient thrashed")
    ("01891110-v", "whip", None, ALL),  # ... but not trees whipping in the wind
    ("13448334-n", "childbirth", "childbirth", ALL),  # having a baby; the process of giving birth
    ("14048441-n", "parturiency", "childbirth", ALL),  # labor, travail: from the onset of contractions to the birth
    ("07320622-n", "delivery", "childbirth", ALL),  # the event of giving birth ("she had a difficult delivery")
    ("14046202-n", "pregnancy", "childbirth", ALONE),  # the state of being pregnant (not its obstetric counts)
    ("14047740-n", "ectopic_pregnancy", "childbirth", ALL),  # pregnancy outside the uterus
    ("14048847-n", "placenta_previa", "childbirth", ALL),  # placenta implanted in the lower part of the uterus
    ("00230475-n", "spontaneous_abortion", "childbirth", ALL),  # miscarriage: a natural loss of the products of
    ("00056930-v", "give_birth", "childbirth", ALONE),  # deliver, bear: cause to be born (not animals calving)
    ("00057665-v", "twin", "childbirth", ALL),  # give birth to twins
    ("14532816-n", "allergy", "allergy", ALL),  # allergic reaction: hypersensitivity reaction to an allergen
    ("14533547-n", "anaphylaxis", "allergy", ALL),  # hypersensitivity reaction to the ingestion or injection of a
    ("14322248-n", "urtication", "allergy", ALL),  # urticaria, hives: an itchy skin eruption
    ("00222485-n", "suicide", "suicide_attempt", ALL),  # the act of killing yourself
    ("00223575-n", "suttee", None, ALL),  # ... but not a widow's ritual cremation
    ("10673669-n", "suicide", "suicide_attempt", ALL),  # a person who kills himself intentionally
    ("14287408-n", "bite", "animal_bite", ALL),  # a wound resulting from biting by an animal; dog bite, snakebite
    ("14297870-n", "sting", "animal_bite", ALL),  # insect bite: a painful wound from an insect's stinger
    ("01445950-v", "bite", "animal_bite", ALL),  # seize with teeth ("Gunny invariably tried to bite her")
    ("01445615-v", "gnaw", None, ALL),  # ... but not eating
    ("01446438-v", "nibble", None, ALL),
    ("01446747-v", "nibble", None, ALL),
    ("01445425-v", "sting", "animal_bite", ALL),  # deliver a sting to ("a bee stung my arm")
    ("14322699-n", "pain", "illness", ALL),  # a symptom of some physical hurt or disorder; aches of every kind
    ("14325220-n", "Passion", None, ALL),  # ... but not the Passion of Christ, nor chafing
    ("07496166-n", "chafing", None, ALL),
    ("14365356-n", "fever", "illness", ALL),  # a rise in the temperature of the body
    ("00118733-n", "vomit", "illness", ALL),  # vomiting: the reflex act of ejecting the contents of the stomach
    ("00076400-v", "vomit", "illness", ALL),  # throw up, be sick
    ("14359952-n", "nausea", "illness", ALL),  # the state that precedes vomiting
    ("14372513-n", "dizziness", "illness", ALL),  # giddiness, lightheadedness, vertigo
    ("14040846-n", "dehydration", "illness", ALL),  # depletion of bodily fluids
    ("14319454-n", "hypoglycemia", "illness", ALL),  # abnormally low blood sugar
    ("14319299-n", "hyperglycemia", "illness", ALL),  # abnormally high blood sugar
    ("14068177-n", "insulin_shock", "illness", ALL),  # hypoglycemia from excessive insulin, causing coma
    ("05680423-n", "diabetic_coma", "illness", ALL),  # coma in inadequately treated diabetes
    ("14371913-n", "diarrhea", "illness", ALL),  # frequent and watery bowel movements
    ("14204095-n", "heatstroke", "illness", ALL),  # collapse caused by exposure to excessive heat; sunstroke
    ("14044454-n", "hypothermia", "illness", ALL),  # subnormal body temperature
    ("14017206-n", "exhaustion", "illness", ALL),  # extreme fatigue
    ("14447019-n", "malaise", "illness", ALL),  # physical discomfort (as mild sickness)
    ("05684003-n", "disorientation", "illness", ALL),  # transient confusion about where you are
    ("05684249-n", "culture_shock", None, ALL),  # ... but not culture shock
    ("14387202-n", "delirium", "illness", ALL),  # a brief state of excitement and mental confusion
    ("10595647-n", "sick_person", "illness", ALONE),  # a person suffering from an illness (not its kinds of sufferer)
    ("10405694-n", "patient", "illness", ALONE),  # a person who requires medical care
)


def _read(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.startswith("  "):  # the licence at the top of each file is indented by two spaces
                yield line.rstrip("\n")


def load_synsets(directory: Path = WORDNET_DIR) -> dict[str, Synset]:
    """data.noun and data.verb as id -> synset.

    A line is: offset lex_filenum ss_type w_cnt (2 hex digits) {word lex_id} p_cnt (3 digits) {pointer_symbol
    offset pos source/target} [verbs: f_cnt {+ f_num w_num}] | gloss. Hyponyms ("~") and hypernyms ("@", "@i")
    are kept, within one part of speech; instance hyponyms ("~i") are not.
    """
    out: dict[str, Synset] = {}
    for part, name in PARTS.items():
        for line in _read(directory / f"data.{name}"):
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            w_cnt = int(fields[3], 16)
            lemmas = tuple(fields[4 : 4 + 2 * w_cnt : 2])
            at = 4 + 2 * w_cnt
            hypernyms: list[str] = []
            hyponyms: list[str] = []
            for i in range(int(fields[at])):
                symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
                if pos != part:
                    continue
                if symbol in ("@", "@i"):
                    hypernyms.append(f"{target}-{part}")
                elif symbol == "~":
                    hyponyms.append(f"{target}-{part}")
            taxon = part == "n" and fields[1] in _TAXON_FILES
            out[f"{fields[0]}-{part}"] = Synset(
                f"{fields[0]}-{part}", lemmas, tuple(hypernyms), tuple(hyponyms), gloss.strip(), taxon
            )
    return out


def load_index(directory: Path = WORDNET_DIR) -> dict[tuple[str, str], list[str]]:
    """index.noun and index.verb as (lemma, part) -> its synsets' ids, most frequent sense first (the order of
    "fire.n.01", "fire.n.02", ...).

    A line is: lemma pos synset_cnt p_cnt {ptr_symbol} sense_cnt tagsense_cnt {synset_offset}.
    """
    out: dict[tuple[str, str], list[str]] = {}
    for part, name in PARTS.items():
        for line in _read(directory / f"index.{name}"):
            fields = line.split()
            synset_cnt, p_cnt = int(fields[2]), int(fields[3])
            out[(fields[0], part)] = [f"{o}-{part}" for o in fields[6 + p_cnt : 6 + p_cnt + synset_cnt]]
    return out


def package_version() -> str:
    """The installed version of `DEBIAN_PACKAGE`, as dpkg says it ("" where there is no dpkg)."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", DEBIAN_PACKAGE], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return ""
    return done.stdout.strip()


def assign(synsets: Mapping[str, Synset]) -> dict[str, tuple[str, int]]:
    """synset id -> (kind, distance from the chosen synset that gave it) for every synset `SYNSETS` reaches.

    Breadth first from all chosen synsets at once: a synset takes the kind of the nearest chosen synset above it
    (itself, if chosen). Two kinds at one distance, or a pruning row (None), leave it, and what only it leads to, out.
    ValueError if a row does not match the database.
    """
    kinds: dict[str, str | None] = {}
    depth: dict[str, int] = {}
    queue: list[tuple[str, str | None, bool]] = []
    for synset_id, lemma, kind, deep in SYNSETS:
        found = synsets.get(synset_id)
        if found is None or found.lemmas[0].lower() != lemma.lower():
            seen = found.lemmas[0] if found else "nothing"
            raise ValueError(f"WordNet {synset_id}: expected {lemma!r}, found {seen!r} (another WordNet release?)")
        if synset_id in kinds:
            raise ValueError(f"WordNet {synset_id} is listed twice")
        kinds[synset_id], depth[synset_id] = kind, 0
        queue.append((synset_id, kind, deep))
    distance = 0
    while queue:
        distance += 1
        level: dict[str, set[str | None]] = defaultdict(set)
        for synset_id, kind, deep in queue:
            for child in synsets[synset_id].hyponyms if deep else ():
                if child not in kinds:
                    level[child].add(kind)
        queue = []
        for child, found_kinds in sorted(level.items()):
            kind = found_kinds.pop() if len(found_kinds) == 1 else None
            kinds[child], depth[child] = kind, distance
            queue.append((child, kind, True))
    return {synset_id: (kind, depth[synset_id]) for synset_id, kind in kinds.items() if kind is not None}


_QUOTED: Final = re.compile(r'"([^"]+)"')


def texts(synset: Synset) -> list[str]:
    """A synset's examples, lower-cased: its lemmas in their order (underscores read as spaces; not the Latin names
    of species), then its definition and its example sentences."""
    out = [lemma.replace("_", " ") for lemma in synset.lemmas if not (synset.taxon and lemma[:1].isupper())]
    definition, _, _ = synset.gloss.partition('"')
    out.append(definition.strip(" ;"))
    out.extend(sentence.strip() for sentence in _QUOTED.findall(synset.gloss))
    return [" ".join(text.lower().split()) for text in out if text.strip()]


#: (distance of its synset from a chosen one, its place among the synset's texts, source): the lower, the firmer.
Claim = tuple[int, int, str]


def spread(items: list[tuple[str, str]], cap: int) -> list[tuple[str, str]]:
    """At most `cap` of `items` (already sorted), evenly spaced over them, first one included."""
    if len(items) <= cap:
        return items
    return [items[i * len(items) // cap] for i in range(cap)]


def _claims(directory: Path) -> dict[str, dict[str, Claim]]:
    """text -> kind -> its firmest claim: for each kind that gives the text, the nearest synset that does."""
    synsets = load_synsets(directory)
    claims: dict[str, dict[str, Claim]] = defaultdict(dict)
    for synset_id, (kind, distance) in assign(synsets).items():
        for place, text in enumerate(texts(synsets[synset_id])):
            claim = (distance, place, synsets[synset_id].source)
            claims[text][kind] = min(claims[text].get(kind, claim), claim)
    return claims


def _owner(by_kind: Mapping[str, Claim]) -> tuple[str, str] | None:
    """(kind, source) of the kind with the firmest claim on a text: its synset nearest to a chosen one, then the
    text earliest among the synset's lemmas ("assault" heads assault.n.02, and is rape.v.01's fourth word).
    None on a tie."""
    ranked = sorted((distance, place, kind, source) for kind, (distance, place, source) in by_kind.items())
    if len(ranked) > 1 and ranked[0][:2] == ranked[1][:2]:
        return None
    return ranked[0][2], ranked[0][3]


def examples(cap: int = CAP, directory: Path = WORDNET_DIR) -> list[tuple[str, str, str]]:
    """(text, kind, source) rows, source "wordnet:<offset>-<n|v>", sorted; at most `cap` per kind.

    A text that two kinds give goes to the kind with the firmer claim (`_owner`: "fire" heads a chosen fire synset,
    and is the second word of a hyponym of a chosen shooting one); on a tie ("burn": burns and fire) it is left out.
    """
    per_kind: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for text, by_kind in _claims(directory).items():
        owner = _owner(by_kind)
        if owner is not None:
            per_kind[owner[0]].append((owner[1], text))
    rows = [(text, kind, source) for kind, items in per_kind.items() for source, text in spread(sorted(items), cap)]
    return sorted(rows)


def ambiguous(directory: Path = WORDNET_DIR) -> dict[str, list[str]]:
    """The texts that two kinds claim equally firmly (left out of `examples`), for the report."""
    return {
        text: sorted(by_kind)
        for text, by_kind in sorted(_claims(directory).items())
        if len(by_kind) > 1 and _owner(by_kind) is None
    }
