"""The shipped example: the 109 real PDUs with a realistic synthetic national staff roster.

Every random draw comes from ``np.random.Generator(np.random.PCG64(...))`` and only its
basic methods (``integers``, ``random``, ``normal``), whose output numpy keeps stable across
versions, so the example is the same on every machine. Each PDU has its own generator, keyed
by the seed and the PDU code, so a PDU's plan does not depend on which other PDUs are present.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.io.files import write_csv

EMAIL_DOMAIN = "justice.gov.uk"

# Random streams: one per purpose, so adding draws to one never shifts another.
_COVARIATE_STREAM = 0
_PLAN_STREAM = 1
_PEOPLE_STREAM = 2

# PODs per PDU (inclusive ranges): York is the smallest PDU; big cities have 300-400 staff.
_YORK = "N55YRK"
_CITY_PDUS = frozenset(
    "N55LEE N55SHF N52BIRM N52BNES N53LEIS N58BSG N55BAC N52DUSA N52BLCO N50MANC N57EKNT".split()
)
_LARGE_PDUS = frozenset(
    "N54DUR N51CTRL N51LSE N55HER N55BAS N53DERS N53NOTS N53NOCY N53EWL N56ESXS N56ESXN "
    "N56HERT N56NOSU N57SUR N57KECL N57WSUS N57SUS N59HAMP N58DEV N03SW1 WPTNWS N54NUTY".split()
)
_SMALL_PDUS = frozenset("N51BLDA N58BNS N59WESB N51HAWA N51WCHE N51SEFT N51KNST N50OLD".split())
_POD_COUNT_RANGES = {
    "york": (4, 4),
    "small": (7, 9),
    "typical": (10, 15),
    "large": (15, 19),
    "city": (25, 31),
}

# Share of PO posts vacant, by region (London and the South East recruit hardest).
_REGIONAL_PO_VACANCY = {
    "London": 0.28,
    "Kent, Surrey and Sussex": 0.26,
    "South Central": 0.24,
    "East of England": 0.22,
    "North East": 0.12,
    "Wales": 0.12,
}
_DEFAULT_PO_VACANCY = 0.16

# The PDU where each region's Regional Probation Director (band 6+) is based.
_REGIONAL_DIRECTOR_PDUS = {
    "North East": "N54NUTY",
    "North West": "N51CTRL",
    "Greater Manchester": "N50MANC",
    "Yorkshire and the Humber": "N55LEE",
    "East Midlands": "N53NOCY",
    "West Midlands": "N52BIRM",
    "East of England": "N56CAMB",
    "London": "LDNLAW",
    "Kent, Surrey and Sussex": "N57KECL",
    "South Central": "N59HAMP",
    "South West": "N58BSG",
    "Wales": "N03SW1",
}

# Plausible office towns per PDU, main office first; PDUs not listed get "<PDU name> Office k".
_OFFICE_TOWNS = {
    "N54DUR": "Durham|Darlington|Bishop Auckland|Peterlee",
    "N54SOT": "Gateshead|South Shields",
    "N54NUTY": "Newcastle upon Tyne|Byker",
    "N54NOT": "North Shields|Ashington|Hexham",
    "N54CLE": "Middlesbrough|Redcar|Guisborough",
    "N54STHA": "Stockton-on-Tees|Hartlepool",
    "N54SUND": "Sunderland|Washington",
    "N51BLDA": "Blackburn|Darwen",
    "N51CTRL": "Preston|Chorley|Leyland",
    "N51CHES": "Crewe|Macclesfield",
    "N51WCHE": "Chester|Ellesmere Port|Northwich",
    "N51CUMB": "Carlisle|Workington|Barrow-in-Furness|Kendal",
    "N51LSE": "Burnley|Accrington|Nelson",
    "N51KNST": "Huyton|St Helens",
    "N51LSF": "Walton|Everton",
    "N51LPLS": "Toxteth|Garston",
    "N51LNW": "Blackpool|Lancaster|Fleetwood",
    "N51SEFT": "Bootle|Southport",
    "N51HAWA": "Warrington|Widnes|Runcorn",
    "N51WSHW": "Birkenhead|Wallasey",
    "N50BOLT": "Bolton|Farnworth",
    "N50ROBO": "Rochdale|Bury",
    "N50MANC": "Cheetham Hill|Harpurhey",
    "N50GMS": "Wythenshawe|Longsight",
    "N50OLD": "Oldham",
    "N50SFTR": "Salford|Sale",
    "N50STTA": "Stockport|Ashton-under-Lyne",
    "N50WIBO": "Wigan|Leigh",
    "N55BAS": "Barnsley|Rotherham",
    "N55BAC": "Bradford|Halifax|Keighley",
    "N55DNR": "Doncaster|Thorne",
    "N55HER": "Hull|Beverley|Bridlington",
    "N55KIR": "Huddersfield|Dewsbury",
    "N55LEE": "Leeds|Seacroft|Pudsey",
    "N55NNEL": "Grimsby|Scunthorpe",
    "N55YNY": "Harrogate|Scarborough|Northallerton|Selby",
    "N55SHF": "Sheffield|Hillsborough",
    "N55WAK": "Wakefield|Pontefract",
    "N55YRK": "York",
    "N53DRBY": "Derby",
    "N53DERS": "Chesterfield|Ilkeston|Buxton|Swadlincote",
    "N53EWL": "Lincoln|Boston|Grantham|Spalding",
    "N53LEIS": "Leicester|Loughborough|Hinckley",
    "N53NOCY": "Nottingham|Radford",
    "N53NOTS": "Mansfield|Newark|Worksop",
    "N52BIRM": "Birmingham|Selly Oak",
    "N52BNES": "Erdington|Solihull",
    "N52CSW": "Coventry",
    "N52DUSA": "Dudley|West Bromwich|Oldbury",
    "N52WEME": "Shrewsbury|Hereford|Telford",
    "N52STF": "Stoke-on-Trent|Newcastle-under-Lyme|Leek",
    "N52STFS": "Stafford|Cannock|Burton upon Trent|Tamworth",
    "N52BLCO": "Wolverhampton|Walsall",
    "N52WARW": "Nuneaton|Leamington Spa|Rugby",
    "N52WORC": "Worcester|Redditch|Kidderminster",
    "N56BEDS": "Bedford|Luton",
    "N56CAMB": "Cambridge|Peterborough|Huntingdon|Wisbech",
    "N56ESXN": "Colchester|Chelmsford|Harlow",
    "N56ESXS": "Basildon|Southend-on-Sea",
    "N56HERT": "Stevenage|Watford|St Albans",
    "N56NOSU": "Norwich|King's Lynn|Great Yarmouth",
    "N56NRTH": "Northampton|Corby|Wellingborough",
    "N56SUFF": "Ipswich|Bury St Edmunds|Lowestoft",
    "LDNBDN": "Barking|Romford",
    "N07BRNT": "Wembley|Harlesden",
    "LDNNCAI": "Camden|Islington",
    "N07CROY": "Croydon",
    "LDNEHH": "Ealing|Uxbridge",
    "N07ENFH": "Enfield|Tottenham",
    "LDNBBG": "Woolwich|Bexleyheath",
    "LDNNHTH": "Hackney",
    "LDNNHAK": "Hammersmith|Westminster",
    "LDNBEB": "Harrow|Barnet",
    "LDNHKR": "Kingston upon Thames|Hounslow|Richmond",
    "LDNLAW": "Brixton",
    "N07LEBR": "Lewisham|Bromley",
    "N07NEWM": "Stratford",
    "LDNHRWF": "Ilford|Walthamstow",
    "LDNNLAS": "Southwark|Camberwell",
    "N07TOWH": "Mile End",
    "LDNCMS": "Wandsworth|Sutton|Mitcham",
    "N57SUS": "Brighton|Eastbourne|Hastings",
    "N57EKNT": "Canterbury|Folkestone|Margate|Ashford",
    "N57SUR": "Guildford|Woking|Redhill",
    "N57KECL": "Maidstone|Chatham|Tonbridge",
    "N57WSUS": "Crawley|Worthing|Chichester|Bognor Regis",
    "N59BUOX": "Milton Keynes|High Wycombe|Aylesbury",
    "N59BRK": "Slough|Bracknell",
    "N59HAMP": "Basingstoke|Aldershot|Winchester",
    "N59OXFS": "Oxford|Banbury",
    "N59SOPO": "Portsmouth|Isle of Wight",
    "N59HSW": "Southampton|Totton",
    "N59WESB": "Reading|Newbury",
    "N58BNS": "Bath|Midsomer Norton",
    "N58BSG": "Bristol|Yate",
    "N58CIOS": "Truro|Bodmin|Penzance",
    "N58DEV": "Exeter|Torquay|Barnstaple",
    "N58DORS": "Bournemouth|Poole|Dorchester|Weymouth",
    "N58GLW": "Gloucester|Cheltenham",
    "N58PLCO": "Plymouth",
    "N58SOM": "Taunton|Yeovil|Bridgwater",
    "N58SWWI": "Swindon|Salisbury|Trowbridge|Chippenham",
    "N03SW1": "Cardiff|Barry",
    "N03CTM": "Merthyr Tydfil|Pontypridd|Bridgend",
    "WPTDPA": "Carmarthen|Aberystwyth|Haverfordwest|Newtown",
    "WPTGWT": "Newport|Cwmbran|Pontypool",
    "WPTNWS": "Wrexham|Caernarfon|Rhyl|Llandudno",
    "N03SNT": "Swansea|Neath|Port Talbot",
}

_FIRST_NAMES = (
    "Oliver George Harry Jack Jacob Noah Charlie Thomas Oscar William James Daniel Mohammed "
    "Joshua Samuel Lewis Ryan Adam Liam Owen Rhys Dylan Callum Aaron Ben Matthew Michael David "
    "Paul Mark Andrew Richard Stephen Gareth Imran Kwame Tariq "
    "Olivia Amelia Emily Isla Ava Jessica Sophie Lily Grace Chloe Ella Megan Hannah Lucy "
    "Charlotte Emma Rebecca Laura Sarah Rachel Claire Helen Nicola Joanne Karen Louise Kelly "
    "Gemma Amy Zara Aisha Priya Fatima Niamh Siobhan Ffion Carys Bethan Abigail"
).split()
_SURNAMES = (
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson "
    "Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson "
    "Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan "
    "Allen James Scott Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell "
    "Kelly Cook Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan "
    "Marshall Anderson Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb "
    "Rogers Gray Mason Ali Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes Knight "
    "Lloyd Butler Russell Barker Fisher Stevens Jenkins Murray Dixon Harvey Ahmed Okafor "
    "O'Brien O'Connor Mensah Nowak Kaur Reid Graham Fletcher Hunt Gibson Howard"
).split()

# Start-date windows per grade (first and last year), and whether recent starts dominate.
_START_YEARS = {
    "PO": (1995, 2021, False),
    "PSO": (2003, 2022, True),
    "PQiP": (2020, 2022, False),
    "CA": (1998, 2022, True),
    "SPO": (1995, 2019, False),
    "Head of PDU": (1995, 2012, False),
    "Band 6+": (1995, 2015, False),
}
_EXPERIENCED_PO_LAST_YEAR = 2017


@dataclass(frozen=True)
class _Pod:
    """Numbers of each practitioner grade in one POD (its SPO is implied)."""

    po: int
    pso: int
    pqip: int
    ca: int

    @property
    def headcount(self) -> int:
        """Staff in the POD including its SPO."""
        return 1 + self.po + self.pso + self.pqip + self.ca


@dataclass(frozen=True)
class _PduPlan:
    """The staffing structure of one PDU, from which both headcount and roster are built."""

    pods: tuple[_Pod, ...]
    senior_managers: int
    has_regional_director: bool
    offices: tuple[str, ...]

    @property
    def headcount(self) -> int:
        """Staff in the PDU: PODs, Head of PDU, band 6+ managers and any regional director."""
        pod_staff = sum(pod.headcount for pod in self.pods)
        return pod_staff + 1 + self.senior_managers + int(self.has_regional_director)


def load_reference_pdus() -> pd.DataFrame:
    """The 109 real PDUs shipped with the package: pdu_code, pdu_name, region."""
    source = resources.files("evalkit.examples").joinpath("data/probation_pdus.csv")
    with source.open("r", encoding="utf-8") as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    return frame[["pdu_code", "pdu_name", "region"]].reset_index(drop=True)


def _pdu_generator(seed: int, stream: int, pdu_code: str) -> np.random.Generator:
    """A generator for one PDU and purpose, so each PDU's draws ignore the other PDUs."""
    return np.random.Generator(np.random.PCG64([seed, stream, zlib.crc32(pdu_code.encode())]))


def _clipped_round(value: float, low: int, high: int) -> int:
    """Round a draw to a whole number inside [low, high]."""
    return int(min(max(round(value), low), high))


def _pod_count(rng: np.random.Generator, pdu_code: str) -> int:
    """How many PODs a PDU has, from its size tier."""
    if pdu_code == _YORK:
        tier = "york"
    elif pdu_code in _CITY_PDUS:
        tier = "city"
    elif pdu_code in _LARGE_PDUS:
        tier = "large"
    elif pdu_code in _SMALL_PDUS:
        tier = "small"
    else:
        tier = "typical"
    low, high = _POD_COUNT_RANGES[tier]
    return int(rng.integers(low, high + 1))


def _draw_pod(rng: np.random.Generator, po_vacancy_rate: float) -> _Pod:
    """One POD near 2 PO : 3 PSO : 1 CA; PO vacancies are covered by PSOs and PQiPs."""
    # Calibrated so ~1,600 PODs give ~5,100 PO, ~6,600 PSO, ~1,450 PQiP and ~18,600 staff in
    # all: published FTE figures (workforce_facts.md) read as a slightly larger headcount.
    po = _clipped_round(rng.normal(3.95 * (1 - po_vacancy_rate), 0.8), 1, 6)
    pso = _clipped_round(rng.normal(3.55 + 3 * po_vacancy_rate, 0.9), 2, 8)
    ca = _clipped_round(rng.normal(2.0, 0.6), 1, 4)
    pqip = _clipped_round(rng.normal(0.4 + 2.5 * po_vacancy_rate, 0.8), 0, po)
    return _Pod(po=po, pso=pso, pqip=pqip, ca=ca)


def _office_names(pdu_code: str, pdu_name: str, pod_count: int) -> tuple[str, ...]:
    """1-4 offices, one more for every six PODs, named after the PDU's towns where known."""
    wanted = min(4, 1 + pod_count // 6)
    towns = _OFFICE_TOWNS[pdu_code].split("|") if pdu_code in _OFFICE_TOWNS else []
    names = [f"{town} Probation Office" for town in towns[:wanted]]
    for number in range(len(names) + 1, wanted + 1):
        names.append(f"{pdu_name} Office" if number == 1 else f"{pdu_name} Office {number}")
    return tuple(names)


def _plan_pdu(seed: int, pdu_code: str, pdu_name: str, po_vacancy_rate: float) -> _PduPlan:
    """Draw one PDU's PODs, senior managers and offices."""
    rng = _pdu_generator(seed, _PLAN_STREAM, pdu_code)
    pod_count = _pod_count(rng, pdu_code)
    pods = tuple(_draw_pod(rng, po_vacancy_rate) for _ in range(pod_count))
    senior_managers = 2 + pod_count // 4 + int(rng.integers(0, 2))
    return _PduPlan(
        pods=pods,
        senior_managers=senior_managers,
        has_regional_director=pdu_code in _REGIONAL_DIRECTOR_PDUS.values(),
        offices=_office_names(pdu_code, pdu_name, pod_count),
    )


def _draw_covariates(seed: int, pdu_code: str, region: str) -> dict[str, float]:
    """PO vacancy rate, caseload and baseline engagement for one PDU; vacancies drive the rest."""
    rng = _pdu_generator(seed, _COVARIATE_STREAM, pdu_code)
    base_vacancy = _REGIONAL_PO_VACANCY.get(region, _DEFAULT_PO_VACANCY)
    vacancy = round(float(np.clip(base_vacancy + rng.normal(0, 0.07), 0.0, 0.4)), 3)
    caseload = float(np.clip(37 + 35 * vacancy + rng.normal(0, 4), 30, 55))
    engagement = float(np.clip(66 - 20 * (vacancy - 0.2) + rng.normal(0, 4), 50, 75))
    return {
        "po_vacancy_rate": vacancy,
        "caseload_per_practitioner": round(caseload, 1),
        "baseline_engagement": round(engagement, 1),
    }


def make_example_pdus(seed: int = 2022) -> pd.DataFrame:
    """The 109 real PDUs with synthetic covariates for balance checks and the roster headcount."""
    pdus = load_reference_pdus()
    pairs = zip(pdus.pdu_code, pdus.region, strict=True)
    covariates = pd.DataFrame([_draw_covariates(seed, code, region) for code, region in pairs])
    pdus = pd.concat([pdus, covariates], axis=1)
    pdus["headcount"] = [
        _plan_pdu(seed, row.pdu_code, row.pdu_name, row.po_vacancy_rate).headcount
        for row in pdus.itertuples(index=False)
    ]
    columns = [
        "pdu_code",
        "pdu_name",
        "region",
        "headcount",
        "caseload_per_practitioner",
        "baseline_engagement",
        "po_vacancy_rate",
    ]
    return pdus[columns]


def _pdu_staff_rows(
    pdu_code: str, plan: _PduPlan, regional_director_key: str | None
) -> list[dict[str, str]]:
    """Roster rows (grade, pod, office, manager key) for one PDU, managers before their teams."""
    head_key = f"{pdu_code}/head"
    main_office = plan.offices[0]
    rows = []
    if plan.has_regional_director:
        rows.append(_row(f"{pdu_code}/director", "Band 6+", pdu_code, "", main_office, ""))
    rows.append(_row(head_key, "Head of PDU", pdu_code, "", main_office, regional_director_key))
    for number in range(1, plan.senior_managers + 1):
        rows.append(_row(f"{head_key}/{number}", "Band 6+", pdu_code, "", main_office, head_key))
    for pod_number, pod in enumerate(plan.pods, start=1):
        pod_name = f"{pdu_code}-POD{pod_number:02d}"
        office = plan.offices[(pod_number - 1) % len(plan.offices)]
        spo_key = f"{pod_name}/spo"
        rows.append(_row(spo_key, "SPO", pdu_code, pod_name, office, head_key))
        for grade, count in (("PO", pod.po), ("PSO", pod.pso), ("PQiP", pod.pqip), ("CA", pod.ca)):
            for number in range(count):
                key = f"{pod_name}/{grade}/{number}"
                rows.append(_row(key, grade, pdu_code, pod_name, office, spo_key))
    return rows


def _row(key: str, grade: str, pdu_code: str, pod: str, office: str, manager: str | None) -> dict:
    """One roster row keyed by a structural key, resolved to staff IDs later."""
    return {
        "key": key,
        "grade": grade,
        "pdu_code": pdu_code,
        "pod": pod,
        "office": office,
        "manager_key": manager or "",
    }


def _synthetic_names(rng: np.random.Generator, count: int) -> tuple[list[str], list[str]]:
    """Deterministic first names and surnames drawn from the embedded lists."""
    firsts = rng.integers(0, len(_FIRST_NAMES), size=count)
    lasts = rng.integers(0, len(_SURNAMES), size=count)
    return [_FIRST_NAMES[i] for i in firsts], [_SURNAMES[i] for i in lasts]


def _emails(first_names: list[str], surnames: list[str]) -> list[str]:
    """firstname.surname<n>@justice.gov.uk, lower case, n counting repeats of the same name."""
    seen: dict[str, int] = {}
    local_of: dict[tuple[str, str], str] = {}   # names repeat: clean each pair once
    emails = []
    for first, last in zip(first_names, surnames, strict=True):
        local = local_of.get((first, last))
        if local is None:
            local = local_of[first, last] = re.sub(r"[^a-z.]", "", f"{first}.{last}".lower())
        seen[local] = seen.get(local, 0) + 1
        emails.append(f"{local}{seen[local]}@{EMAIL_DOMAIN}")
    return emails


def _start_dates(rng: np.random.Generator, grades: list[str], experienced: list[bool]) -> list:
    """ISO start dates by grade; PQiPs are recent and each POD's lead PO is experienced."""
    unit = rng.random(size=len(grades))
    years = np.array([_START_YEARS[grade] for grade in grades], dtype=object).reshape(-1, 3)
    first_year = years[:, 0].astype(int)
    last_year = np.where(experienced, _EXPERIENCED_PO_LAST_YEAR, years[:, 1].astype(int))
    first = (first_year - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    last = (last_year - 1970 + 1).astype("datetime64[Y]").astype("datetime64[D]") - 1
    span = (last - first).astype(int)
    share = np.where(years[:, 2].astype(bool), np.sqrt(unit), unit)
    return (first + (share * span).astype(int)).astype(str).tolist()


def make_example_staff(pdus: pd.DataFrame, seed: int = 2022) -> pd.DataFrame:
    """A synthetic roster for the given PDUs (from make_example_pdus) in PODs under SPOs."""
    missing = {"pdu_code", "pdu_name", "region", "po_vacancy_rate"} - set(pdus.columns)
    if missing:
        raise ValueError(f"pdus lacks columns {sorted(missing)}; use make_example_pdus()")
    director_keys = {
        region: f"{code}/director"
        for region, code in _REGIONAL_DIRECTOR_PDUS.items()
        if code in set(pdus.pdu_code)
    }
    rows = []
    for pdu in pdus.itertuples(index=False):
        plan = _plan_pdu(seed, pdu.pdu_code, pdu.pdu_name, float(pdu.po_vacancy_rate))
        if "headcount" in pdus.columns and int(pdu.headcount) != plan.headcount:
            raise ValueError(f"headcount of {pdu.pdu_code} does not match seed {seed}")
        rows += _pdu_staff_rows(pdu.pdu_code, plan, director_keys.get(pdu.region))
    return _people_from_rows(pd.DataFrame(rows), seed)


def _people_from_rows(rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Give structural rows staff IDs, names, emails, start dates and manager IDs."""
    rng = np.random.Generator(np.random.PCG64([seed, _PEOPLE_STREAM]))
    staff_ids = [f"S{number:06d}" for number in range(1, len(rows) + 1)]
    id_by_key = dict(zip(rows["key"], staff_ids, strict=True))
    first_names, surnames = _synthetic_names(rng, len(rows))
    is_lead_po = rows["key"].str.endswith("/PO/0").tolist()
    return pd.DataFrame(
        {
            "staff_id": staff_ids,
            "name": [f"{first} {last}" for first, last in zip(first_names, surnames, strict=True)],
            "email": _emails(first_names, surnames),
            "grade": rows["grade"].tolist(),
            "pdu_code": rows["pdu_code"].tolist(),
            "pod": rows["pod"].tolist(),
            "line_manager_id": [id_by_key.get(key, "") for key in rows["manager_key"]],
            "office": rows["office"].tolist(),
            "start_date": _start_dates(rng, rows["grade"].tolist(), is_lead_po),
        }
    )


def write_example(directory: Path, seed: int = 2022) -> dict[str, Path]:
    """Write pdus.csv and staff.csv for the example into a directory; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pdus = make_example_pdus(seed)
    staff = make_example_staff(pdus, seed)
    paths = {"pdus": directory / "pdus.csv", "staff": directory / "staff.csv"}
    write_csv(paths["pdus"], pdus)
    write_csv(paths["staff"], staff)
    return paths
