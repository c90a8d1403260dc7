"""Every bad input exits 2 with one message naming file, row and column, and writes nothing.

The big table (CASES) covers every command: each row exits 2 with a message, prints no
traceback, and leaves the run folder byte for byte as it was. One small synthetic run folder
is sealed once per module; most rows run the CLI in-process (typer's CliRunner), a few
through a real subprocess.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.io.runfolder import LOCK_FILE
from tests.helpers import small_pdus, small_staff, write_trial

runner = CliRunner()


def run_assign_cli(design_path, out):
    return runner.invoke(app, ["assign", str(design_path), "--out", str(out)])


def assert_rejected(result, out, *fragments):
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists() or not any(out.iterdir())
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def _missing_column(pdus, staff):
    return pdus.drop(columns=["region"]), staff


def _blank_id(pdus, staff):
    staff.loc[5, "staff_id"] = ""
    return pdus, staff


def _duplicate_pdu(pdus, staff):
    pdus.loc[3, "pdu_code"] = pdus.loc[2, "pdu_code"]
    return pdus, staff


def _duplicate_staff(pdus, staff):
    staff.loc[9, "staff_id"] = staff.loc[4, "staff_id"]
    return pdus, staff


def _two_regions(pdus, staff):
    extra = pdus.iloc[[0]].assign(region="Region 2")
    return pd.concat([pdus, extra], ignore_index=True), staff


def _unknown_pdu(pdus, staff):
    staff.loc[7, "pdu_code"] = "P0O1"
    return pdus, staff


def _unknown_grade(pdus, staff):
    staff.loc[2, "grade"] = "SP0"
    return pdus, staff


ROSTER_CASES = [
    (_missing_column, ["pdus.csv", "row 1", "'region'", "missing required column"]),
    (_blank_id, ["staff.csv", "row 7", "'staff_id'", "blank staff ID"]),
    (_duplicate_pdu, ["pdus.csv", "row 5", "'pdu_code'", "duplicate ID 'P002'", "rows 4, 5"]),
    (_duplicate_staff, ["staff.csv", "row 11", "'staff_id'", "duplicate ID"]),
    (_two_regions, ["pdus.csv", "row 17", "'region'", "listed in two regions"]),
    (_unknown_pdu, ["staff.csv", "row 9", "'pdu_code'", "unknown PDU 'P0O1'", "'P001'"]),
    (_unknown_grade,
     ["staff.csv", "row 4", "'grade'", "unknown grade 'SP0'", "Did you mean 'SPO'"]),
]


@pytest.mark.parametrize(("corrupt", "fragments"), ROSTER_CASES,
                         ids=[c[0].__name__.strip("_") for c in ROSTER_CASES])
def test_bad_roster_is_rejected_and_nothing_written(tmp_path, corrupt, fragments):
    pdus, staff = corrupt(small_pdus(), small_staff(small_pdus()))
    design = write_trial(tmp_path / "trial", pdus=pdus, staff=staff)
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, *fragments)


DESIGN_CASES = [
    ({"fixed": '["Cmabridgeshire"]'}, ["arms[0].fixed", "'Cmabridgeshire' matches no unit"]),
    ({"treatment_ratio": -1}, ["arms[1].ratio", "greater than or equal to 0"]),
    ({"extra_trial": "colour = 1"}, ["unknown key 'trial.colour'", "allowed keys here"]),
    ({"extra_trial": "unit = 'pdus'"}, ["malformed TOML"]),
    ({"extra": "[randomisation]\nmethod = 'random'"}, ["randomisation.method", "'complete'"]),
]


@pytest.mark.parametrize(("options", "fragments"), DESIGN_CASES,
                         ids=["fixed-not-found", "negative-ratio", "unknown-key", "malformed",
                              "bad-method"])
def test_bad_design_is_rejected_and_nothing_written(tmp_path, options, fragments):
    design = write_trial(tmp_path / "trial", **options)
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, *fragments)


def test_cmabridgeshire_suggests_cambridgeshire(tmp_path, example_files):
    design = tmp_path / "seeds2.toml"
    source = (pytest.importorskip("tests.conftest").SEEDS2_CONFIG).read_text()
    design.write_text(source.replace('"Cambridgeshire and Peterborough"', '"Cmabridgeshire"'))
    out = tmp_path / "out"
    result = runner.invoke(app, ["assign", str(design), "--pdus", str(example_files["pdus"]),
                                 "--staff", str(example_files["staff"]), "--out", str(out)])
    assert_rejected(result, out, "'Cmabridgeshire' matches no unit",
                    "Did you mean 'Cambridgeshire and Peterborough'")


def test_unit_fixed_in_two_arms(tmp_path):
    design = write_trial(tmp_path / "trial")
    text = design.read_text().replace('name = "Treatment"\n',
                                      'name = "Treatment"\nfixed = ["P000"]\n')
    design.write_text(text)
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, "fixed in two arms", "'Early Adopter'")


def test_all_ratios_zero(tmp_path):
    design = write_trial(tmp_path / "trial", treatment_ratio=0)
    design.write_text(design.read_text().replace("ratio = 1\ncontrol", "ratio = 0\ncontrol"))
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, "all ratios are zero")


def test_stratum_with_no_units(tmp_path):
    pdus = small_pdus()
    staff = small_staff(pdus)
    staff = staff[staff["pdu_code"] != "P103"]
    design = write_trial(tmp_path / "trial", unit="staff", fixed="[]", pdus=pdus, staff=staff)
    out = tmp_path / "out"
    assert_rejected(run_assign_cli(design, out), out, "pdus.csv", "row 10",
                    "stratum with no units", "'P103'")


def test_utf8_bom_and_xlsx_rosters_are_accepted(tmp_path):
    design = write_trial(tmp_path / "trial")
    folder = tmp_path / "trial"
    pdus = pd.read_csv(folder / "pdus.csv")
    (folder / "pdus.csv").write_bytes("\ufeff".encode() + (folder / "pdus.csv").read_bytes())
    pd.read_csv(folder / "staff.csv").to_excel(folder / "staff.xlsx", index=False)
    result = runner.invoke(app, ["assign", str(design), "--staff", str(folder / "staff.xlsx"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    allocation = pd.read_csv(tmp_path / "out" / "allocation.csv")
    assert set(allocation["unit_id"]) == set(pdus["pdu_code"])

EVALKIT = [sys.executable, "-m", "evalkit"]
BOOKINGS = "staff_id,course,status,date\nP000-S0,SEEDS2 for Practitioners,booked,2022-03-05\n"
STARTERS = "staff_id,grade,pdu_code\nN1,PO,P001\n"


@dataclass
class Context:
    """Paths every row may use: the sealed run, the good inputs, a folder for bad files."""

    run: Path
    trial: Path
    bad: Path

    @property
    def design(self) -> Path:
        return self.trial / "design.toml"

    def text(self, name: str) -> str:
        return (self.trial / name).read_text()

    def write(self, name: str, data: str | bytes) -> Path:
        path = self.bad / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def out(self, name: str) -> Path:
        return self.bad / f"out-{name}"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    base = tmp_path_factory.mktemp("bad-table")
    design = write_trial(base / "trial")
    result = runner.invoke(app, ["assign", str(design), "--out", str(base / "run")])
    assert result.exit_code == 0, result.output
    (base / "bad").mkdir()
    return Context(run=base / "run", trial=base / "trial", bad=base / "bad")


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under `folder` with the SHA-256 of its bytes ('dir' for folders); the
    run-folder lock file (empty, kept between commands) is not content."""
    return {str(p.relative_to(folder)): "dir" if p.is_dir() else
            hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.name != LOCK_FILE}


# ---- builders: each returns the argv of one bad run -------------------------------------

def assign_with(ctx: Context, name: str, *, pdus: Path | None = None, staff: Path | None = None,
                design: Path | None = None, out: Path | None = None) -> list[str]:
    return ["assign", str(design or ctx.design), "--pdus", str(pdus or ctx.trial / "pdus.csv"),
            "--staff", str(staff or ctx.trial / "staff.csv"), "--out", str(out or ctx.out(name))]


def bad_pdus(edit: Callable[[str], str | bytes] | bytes) -> Callable[[Context, str], list[str]]:
    def build(ctx: Context, name: str) -> list[str]:
        data = edit if isinstance(edit, bytes) else edit(ctx.text("pdus.csv"))
        return assign_with(ctx, name, pdus=ctx.write(f"{name}/pdus.csv", data))
    return build


def bad_staff(edit: Callable[[str], str] | bytes) -> Callable[[Context, str], list[str]]:
    def build(ctx: Context, name: str) -> list[str]:
        data = edit if isinstance(edit, bytes) else edit(ctx.text("staff.csv"))
        return assign_with(ctx, name, staff=ctx.write(f"{name}/staff.csv", data))
    return build


def bad_design(edit: Callable[[str], str]) -> Callable[[Context, str], list[str]]:
    def build(ctx: Context, name: str) -> list[str]:
        return assign_with(ctx, name, design=ctx.write(f"{name}/design.toml",
                                                       edit(ctx.text("design.toml"))))
    return build


def replace(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, count)
    return edit


def in_row(number: int, old: str, new: str) -> Callable[[str], str]:
    """Replace `old` by `new` in spreadsheet row `number` (header is row 1)."""
    def edit(text: str) -> str:
        lines = text.splitlines(keepends=True)
        assert old in lines[number - 1], (old, lines[number - 1])
        lines[number - 1] = lines[number - 1].replace(old, new, 1)
        return "".join(lines)
    return edit


def header_only(text: str) -> str:
    return text.splitlines(keepends=True)[0]


def add_column(name: str, value: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        lines = text.splitlines()
        return "\n".join([f"{lines[0]},{name}"] + [f"{line},{value}" for line in lines[1:]]) + "\n"
    return edit


def xlsx_pdus(make: Callable[[Context, Path], None]) -> Callable[[Context, str], list[str]]:
    def build(ctx: Context, name: str) -> list[str]:
        path = ctx.bad / name / "pdus.xlsx"
        path.parent.mkdir(parents=True, exist_ok=True)
        make(ctx, path)
        return assign_with(ctx, name, pdus=path)
    return build


def two_sheets(ctx: Context, path: Path) -> None:
    frame = pd.read_csv(ctx.trial / "pdus.csv")
    with pd.ExcelWriter(path) as writer:
        frame.head(8).to_excel(writer, sheet_name="North", index=False)
        frame.tail(7).to_excel(writer, sheet_name="South", index=False)


def formula_without_value(ctx: Context, path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    frame = pd.read_csv(ctx.trial / "pdus.csv")
    sheet.append(list(frame.columns))
    for record in frame.itertuples(index=False):
        sheet.append(list(record))
    sheet["B3"] = '=CONCAT("Town ", "0-1")'   # openpyxl stores no cached value
    book.save(path)


def one_sheet(frame_edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Context, Path],
                                                                             None]:
    def make(ctx: Context, path: Path) -> None:
        frame_edit(pd.read_csv(ctx.trial / "pdus.csv")).to_excel(path, index=False)
    return make


def truncated_xlsx(ctx: Context, path: Path) -> None:
    one_sheet(lambda f: f)(ctx, path)
    path.write_bytes(path.read_bytes()[:400])


def renamed_csv(ctx: Context, path: Path) -> None:
    path.write_bytes((ctx.trial / "pdus.csv").read_bytes())


def zip_without_workbook(ctx: Context, path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")


def run_command(command: str, *options: str) -> Callable[[Context, str], list[str]]:
    return lambda ctx, name: [command, str(ctx.run), *options]


def with_file(command: str, option: str, data: str | bytes, file_name: str = "file.csv",
              *extra: str) -> Callable[[Context, str], list[str]]:
    def build(ctx: Context, name: str) -> list[str]:
        path = ctx.write(f"{name}/{file_name}", data)
        return [command, str(ctx.run), option, str(path), *extra]
    return build


def enrol_file(data: str | bytes, file_name: str = "starters.csv"):
    return with_file("enrol", "--staff", data, file_name)


def monitor_file(data: str | bytes, *extra: str, file_name: str = "bookings.csv"):
    return with_file("monitor", "--bookings", data, file_name, *extra)


def on_path(command: list[str], kind: str) -> Callable[[Context, str], list[str]]:
    """`command` with {run} replaced by a folder without a register, a file, or nothing."""
    def build(ctx: Context, name: str) -> list[str]:
        target = ctx.bad / name / "target"
        if kind == "empty folder":
            target.mkdir(parents=True)
        elif kind == "file":
            target.parent.mkdir(parents=True)
            target.write_text("not a run folder")
        return [str(target) if part == "{run}" else part for part in command]
    return build


def plain_file_as(option_builder: Callable[[Context, Path], list[str]], make: str):
    def build(ctx: Context, name: str) -> list[str]:
        path = ctx.bad / name / "thing.csv"
        if make == "folder":
            path.mkdir(parents=True)
        return option_builder(ctx, path)
    return build


def templates_with(files: dict[str, str], command: str) -> Callable[[Context, str], list[str]]:
    def build(ctx: Context, name: str) -> list[str]:
        for file_name, text in files.items():
            ctx.write(f"{name}/templates/{file_name}", text)
        return [command, str(ctx.run), "--templates", str(ctx.bad / name / "templates")]
    return build


def analyse_file(data: str, *options: str) -> Callable[[Context, str], list[str]]:
    def build(ctx: Context, name: str) -> list[str]:
        path = ctx.write(f"{name}/outcomes.csv", data)
        return ["analyse", str(path), *options]
    return build


OUTCOMES = "arm,pdu,y\n" + "".join(f"{'Control' if i % 2 else 'Treatment'},P{i % 6},{i}\n"
                                   for i in range(24))
WINDOW_LINE = 'windows.Treatment = ["2022-06-01", "2022-09-30"]'
REVERSED_WINDOW = 'windows.Treatment = ["2022-09-30", "2022-06-01"]'
EXCLUDE_TOWN = replace("[trial]\n", '[trial]\nexclude = ["Town 1-1"]\n')

# ---- the table: (id, builder, fragments the message must contain) --------------------------

CASES: list[tuple[str, Callable[[Context, str], list[str]], list[str]]] = [
    # PDU roster, CSV
    ("pdus-missing-column", bad_pdus(replace("region", "area")), ["pdus.csv", "'region'"]),
    ("pdus-blank-code", bad_pdus(in_row(3, "P001", "")), ["row 3", "blank PDU code"]),
    ("pdus-blank-name", bad_pdus(in_row(4, "Town 0-2", "")), ["row 4", "blank PDU name"]),
    ("pdus-blank-region", bad_pdus(in_row(5, "Region 0", "")), ["row 5", "blank region"]),
    ("pdus-duplicate-code", bad_pdus(in_row(4, "P002", "P001")), ["rows 3, 4", "duplicate"]),
    ("pdus-case-twin", bad_pdus(in_row(4, "P002", "p001")), ["'p001' (row 4)", "'P001' (row 3)"]),
    ("pdus-slash-code", bad_pdus(in_row(3, "P001", "P0/01")), ["'P0/01'", "letters, digits"]),
    ("pdus-traversal-code", bad_pdus(in_row(3, "P001", "../../../../tmp/x")),
     ["row 3", "'-' and '_'"]),
    ("pdus-space-in-code", bad_pdus(in_row(3, "P001", "P 001")), ["'P 001'", "letters"]),
    ("pdus-dot-code", bad_pdus(in_row(3, "P001", "P0.1")), ["'P0.1'", "letters"]),
    ("pdus-two-regions", bad_pdus(lambda t: t + "P000,Town 0-0,Region 2,20,30.0\n"),
     ["listed in two regions"]),
    ("pdus-covariate-text", bad_pdus(in_row(3, ",23,", ",forty,")),
     ["row 3", "'headcount'", "'forty'"]),
    ("pdus-covariate-nan", bad_pdus(in_row(3, ",23,", ",NaN,")), ["row 3", "'NaN'", "finite"]),
    ("pdus-covariate-inf", bad_pdus(in_row(3, ",23,", ",inf,")), ["row 3", "'inf'"]),
    ("pdus-covariate-minus-inf", bad_pdus(in_row(3, ",23,", ",-inf,")), ["row 3", "'-inf'"]),
    ("pdus-covariate-blank", bad_pdus(in_row(3, ",23,", ",,")), ["row 3", "blank", "headcount"]),
    ("pdus-covariate-comma-decimal", bad_pdus(in_row(2, ",30.0", ',"30,5"')),
     ["row 2", "caseload_per_practitioner"]),
    ("pdus-duplicate-header", bad_pdus(add_column("headcount", "1")),
     ["'headcount' appears twice", "columns D and F"]),
    ("pdus-ambiguous-header", bad_pdus(add_column("Region", "x")),
     ["'region'", "'Region'", "both mean"]),
    ("pdus-header-only", bad_pdus(header_only), ["header but no rows"]),
    ("pdus-empty-file", bad_pdus(b""), ["file is empty"]),
    ("pdus-blank-lines-only", bad_pdus(b"\n\n\n"), ["file is empty"]),
    ("pdus-delimiters-only", bad_pdus(b",,,\r\n,,,\r\n"), ["no header row", "only delimiters"]),
    ("pdus-quoted-blanks-only", bad_pdus(b'"",""\n'), ["no header row"]),
    ("pdus-nul-byte", bad_pdus(in_row(3, "Town", "To\x00wn")), ["NUL"]),
    ("pdus-bell-character", bad_pdus(in_row(3, "Town", "To\x07wn")),
     ["row 3", "'pdu_name'", "control character"]),
    ("pdus-escape-character", bad_pdus(in_row(4, "Region", "\x1bRegion")),
     ["row 4", "control character"]),
    ("pdus-line-break-in-name", bad_pdus(in_row(3, "Town 0-1", '"Town\n0-1"')),
     ["row 3", "line break"]),
    ("pdus-tab-in-code", bad_pdus(in_row(3, "P001", '"P0\t01"')), ["row 3", "tab"]),
    ("pdus-extra-cells", bad_pdus(in_row(3, "31.5", "31.5,9,9")), ["row 3", "7 cells"]),
    ("pdus-unclosed-quote", bad_pdus(in_row(3, "Town 0-1", '"Town 0-1')), ["cannot parse CSV"]),
    ("pdus-not-any-encoding", bad_pdus(lambda t: t.encode().replace(b"Town 0-1", b"T\x81wn")),
     ["neither UTF-8 nor Windows-1252"]),
    ("pdus-mixed-delimiters", bad_pdus(replace("pdu_code,pdu_name", "pdu_code;pdu_name")),
     ["cannot tell the delimiter", "comma and semicolon"]),
    ("pdus-unsupported-type", lambda c, n: assign_with(c, n, pdus=c.write(f"{n}/p.json", "{}")),
     ["unsupported file type '.json'"]),
    ("pdus-missing-file", lambda c, n: assign_with(c, n, pdus=c.bad / n / "none.csv"),
     ["none.csv", "file not found"]),
    ("pdus-is-folder", plain_file_as(lambda c, p: assign_with(c, "pdus-is-folder", pdus=p),
                                     "folder"), ["is a folder"]),
    # PDU roster, XLSX
    ("xlsx-two-sheets", xlsx_pdus(two_sheets), ["2 sheets", "North, South", "pdus.xlsx#North"]),
    ("xlsx-formula-no-value", xlsx_pdus(formula_without_value),
     ["row 3", "'pdu_name'", "no stored value"]),
    ("xlsx-truncated", xlsx_pdus(truncated_xlsx), ["not a readable .xlsx"]),
    ("xlsx-renamed-csv", xlsx_pdus(renamed_csv), ["not a readable .xlsx"]),
    ("xlsx-zip-not-workbook", xlsx_pdus(zip_without_workbook), ["not a readable .xlsx"]),
    ("xlsx-header-only", xlsx_pdus(one_sheet(lambda f: f.head(0))), ["header but no rows"]),
    ("xlsx-blank-name", xlsx_pdus(one_sheet(lambda f: f.assign(
        pdu_name=f["pdu_name"].where(f.index != 4, None)))), ["row 6", "blank PDU name"]),
    ("xlsx-case-twin", xlsx_pdus(one_sheet(lambda f: f.assign(
        pdu_code=f["pdu_code"].where(f.index != 2, "p000")))), ["'p000' (row 4)", "(row 2)"]),
    ("xlsx-covariate-text", xlsx_pdus(one_sheet(lambda f: f.assign(
        headcount=f["headcount"].astype(object).where(f.index != 3, "n/a")))),
     ["row 5", "'n/a'"]),
    ("xlsx-no-such-sheet", lambda c, n: assign_with(c, n, pdus=Path(str(
        xlsx_pdus(one_sheet(lambda f: f))(c, n)[3]) + "#Staff")), ["no sheet 'Staff'"]),
    # staff roster
    ("staff-missing-column", bad_staff(replace("grade", "band")), ["staff.csv", "'grade'"]),
    ("staff-blank-id", bad_staff(in_row(6, "P001-S0", "")), ["row 6", "blank staff ID"]),
    ("staff-duplicate-id", bad_staff(in_row(6, "P001-S0,", "P000-S0,")), ["rows 2, 6"]),
    ("staff-case-twin", bad_staff(in_row(6, "P001-S0,", "p000-s0,")),
     ["'p000-s0' (row 6)", "'P000-S0' (row 2)"]),
    ("staff-space-twin", bad_staff(lambda t: in_row(6, "P001-S0,", "P001 S0,")(
        in_row(7, "P001-S1,", "P001  s0,")(t))), ["row 7", "case and spaces"]),
    ("staff-unknown-grade", bad_staff(in_row(3, ",PSO,", ",PS0,")), ["row 3", "'PS0'"]),
    ("staff-unknown-pdu", bad_staff(in_row(3, ",P000,", ",P999,")), ["row 3", "'P999'"]),
    ("staff-header-only", bad_staff(header_only), ["staff roster has a header but no rows"]),
    ("staff-nul-byte", bad_staff(in_row(4, "Person", "Per\x00son")), ["NUL"]),
    ("staff-control-character", bad_staff(in_row(4, "Person", "Per\x0bson")),
     ["row 4", "'name'", "control character"]),
    ("staff-line-break-in-id", bad_staff(in_row(4, "P000-S2,", '"P000\nS2",')),
     ["row 4", "line break"]),
    ("staff-duplicate-header", bad_staff(add_column("grade", "PO")), ["'grade' appears twice"]),
    ("staff-ambiguous-header", bad_staff(add_column("Staff ID", "x")), ["both mean 'staff_id'"]),
    ("staff-is-folder", plain_file_as(lambda c, p: assign_with(c, "staff-is-folder", staff=p),
                                      "folder"), ["is a folder"]),
    # design file
    ("design-seed-bool", bad_design(replace("seed = 42", "seed = true")),
     ["trial.seed", "valid integer", "true/false"]),
    ("design-seed-string", bad_design(replace("seed = 42", 'seed = "42"')),
     ["trial.seed", "text in quotes"]),
    ("design-seed-negative", bad_design(replace("seed = 42", "seed = -1")), ["trial.seed"]),
    ("design-seed-float", bad_design(replace("seed = 42", "seed = 4.2")), ["trial.seed"]),
    ("design-seed-huge", bad_design(replace("seed = 42", "seed = [42]")),
     ["trial.seed"]),
    ("design-ratio-string", bad_design(replace("ratio = 1\ncontrol", 'ratio = "1"\ncontrol')),
     ["arms[2].ratio", "text in quotes"]),
    ("design-ratio-bool", bad_design(replace("ratio = 1\ncontrol", "ratio = true\ncontrol")),
     ["arms[2].ratio"]),
    ("design-ratio-negative", bad_design(replace("ratio = 1\ncontrol", "ratio = -2\ncontrol")),
     ["arms[2].ratio"]),
    ("design-ratio-fraction", bad_design(replace("ratio = 1\ncontrol", "ratio = 0.5\ncontrol")),
     ["arms[2].ratio"]),
    ("design-control-int", bad_design(replace("control = true", "control = 1")),
     ["arms[2].control", "valid boolean"]),
    ("design-control-string", bad_design(replace("control = true", 'control = "yes"')),
     ["arms[2].control"]),
    ("design-name-line-break", bad_design(replace('name = "Small trial"',
                                                  'name = "Small\\ntrial"')),
     ["trial.name", "line break"]),
    ("design-name-multiline", bad_design(replace('name = "Small trial"',
                                                 'name = """Small\ntrial"""')),
     ["trial.name", "line break"]),
    ("design-name-empty", bad_design(replace('name = "Small trial"', 'name = ""')),
     ["trial.name"]),
    ("design-arm-name-tab", bad_design(replace('name = "Treatment"', 'name = "Treat\\tment"')),
     ["arms[1].name", "line break or control"]),
    ("design-unknown-key", bad_design(replace("[trial]\n", "[trial]\ncolour = 1\n")),
     ["unknown key 'trial.colour'"]),
    ("design-malformed", bad_design(replace("seed = 42", "seed = ")), ["malformed TOML"]),
    ("design-bad-method", bad_design(lambda t: t + "\n[randomisation]\nmethod = 'random'\n"),
     ["randomisation.method"]),
    ("design-draws-string", bad_design(lambda t: t + "\n[randomisation]\nmax_draws = '10'\n"),
     ["randomisation.max_draws"]),
    ("design-share-string", bad_design(
        lambda t: t + "\n[delivery]\nmax_share_away_per_week = '0.2'\n"),
     ["delivery.max_share_away_per_week"]),
    ("design-places-string", bad_design(
        lambda t: t + '\n[[courses.sessions]]\ndate = 2022-06-10\nplaces = "12"\n'),
     ["places"]),
    ("design-unit-unknown", bad_design(replace('unit = "pdu"', 'unit = "team"')), ["trial.unit"]),
    ("design-fixed-unknown", bad_design(replace('["Town 0-0"]', '["Twon 0-0"]')),
     ["'Twon 0-0' matches no unit", "Did you mean"]),
    ("design-fixed-ambiguous", lambda c, n: assign_with(c, n, pdus=c.write(
        f"{n}/pdus.csv", in_row(3, "Town 0-1", "Town 0-0")(c.text("pdus.csv")))),
     ["'Town 0-0' is the name of 2 units", "P000, P001"]),
    ("design-exclude-ambiguous", lambda c, n: assign_with(
        c, n, pdus=c.write(f"{n}/pdus.csv", in_row(7, "Town 1-0", "Town 1-1")(
            c.text("pdus.csv"))),
        design=c.write(f"{n}/design.toml", EXCLUDE_TOWN(c.text("design.toml")))),
     ["trial.exclude", "P100, P101"]),
    ("design-exclude-unknown", bad_design(replace("[trial]\n", '[trial]\nexclude = ["Nowhere"]\n')),
     ["trial.exclude", "'Nowhere' matches no unit"]),
    ("design-fixed-twice", bad_design(replace('name = "Treatment"\n',
                                              'name = "Treatment"\nfixed = ["P000"]\n')),
     ["fixed in two arms"]),
    ("design-window-reversed", bad_design(replace(WINDOW_LINE, REVERSED_WINDOW)),
     ["ends", "before it starts"]),
    ("design-unknown-course-grade", bad_design(replace('"PQiP"]', '"PQIP2"]')), ["'PQIP2'"]),
    ("design-duplicate-arm", bad_design(replace('name = "Treatment"', 'name = "Control"')),
     ["arm names must be unique"]),
    ("design-two-controls", bad_design(replace('ratio = {r}\n'.replace("{r}", "1"),
                                               "ratio = 1\ncontrol = true\n")),
     ["exactly one arm"]),
    ("design-not-utf8", lambda c, n: assign_with(c, n, design=c.write(
        f"{n}/design.toml", c.text("design.toml").replace("Small", "Sm\xe9ll").encode("latin-1"))),
     ["not valid UTF-8"]),
    ("design-is-folder", lambda c, n: assign_with(c, n, design=(c.bad / n / "d.toml").mkdir(
        parents=True) or c.bad / n / "d.toml"), ["is a folder"]),
    ("design-missing", lambda c, n: assign_with(c, n, design=c.bad / "nope.toml"),
     ["file not found"]),
    ("assign-out-is-file", lambda c, n: assign_with(c, n, out=c.write(f"{n}/out.txt", "x")),
     ["--out is an existing file"]),
    ("assign-out-unwritable", lambda c, n: assign_with(c, n, out=Path("/proc/evalkit-out")),
     ["error:", "/proc"]),
    ("assign-out-sealed", lambda c, n: assign_with(c, n, out=c.run),
     ["already holds a sealed allocation"]),
    # verify, lookup, windows, guidance, publish on a folder that is not a run
    ("verify-empty-folder", on_path(["verify", "{run}"], "empty folder"), ["register"]),
    ("verify-a-file", on_path(["verify", "{run}"], "file"), ["register"]),
    ("verify-missing", on_path(["verify", "{run}"], "missing"), ["register"]),
    ("verify-config-not-utf8", lambda c, n: ["verify", str(c.run), "--config", str(c.write(
        f"{n}/d.toml", b"[trial]\nname = '\xe9'\n"))], ["not valid UTF-8"]),
    ("verify-staff-folder", plain_file_as(lambda c, p: ["verify", str(c.run), "--staff", str(p)],
                                          "folder"), ["is a folder"]),
    ("lookup-empty-folder", on_path(["lookup", "{run}", "P000"], "empty folder"), ["register"]),
    ("windows-empty-folder", on_path(["windows", "{run}"], "empty folder"), ["register"]),
    ("windows-templates-missing", run_command("windows", "--templates", "/nonexistent/t"),
     ["templates folder not found"]),
    ("guidance-empty-folder", on_path(["guidance", "{run}"], "empty folder"), ["register"]),
    ("guidance-a-file", on_path(["guidance", "{run}"], "file"), ["register"]),
    ("guidance-templates-missing", run_command("guidance", "--templates", "/nonexistent/t"),
     ["templates folder not found"]),
    ("guidance-template-syntax", templates_with({"briefing.md.j2": "{% if %}"}, "guidance"),
     ["briefing.md.j2", "line 1"]),
    ("guidance-template-undefined", templates_with({"briefing.md.j2": "{{ nothing_here }}"},
                                                   "guidance"), ["nothing_here"]),
    ("publish-empty-folder", on_path(["publish", "{run}"], "empty folder"), ["register"]),
    ("publish-missing", on_path(["publish", "{run}"], "missing"), ["register"]),
    # enrol
    ("enrol-missing-file", lambda c, n: ["enrol", str(c.run), "--staff", str(c.bad / "no.csv")],
     ["file not found"]),
    ("enrol-folder", plain_file_as(lambda c, p: ["enrol", str(c.run), "--staff", str(p)],
                                   "folder"), ["is a folder"]),
    ("enrol-unknown-pdu", enrol_file(STARTERS.replace("P001", "P999")), ["'P999'"]),
    ("enrol-unknown-grade", enrol_file(STARTERS.replace(",PO,", ",Boss,")), ["'Boss'"]),
    ("enrol-already-enrolled", enrol_file(STARTERS.replace("N1", "P000-S0")),
     ["already enrolled"]),
    ("enrol-case-twin-of-enrolled", enrol_file(STARTERS.replace("N1", "p000-s0")),
     ["already enrolled"]),
    ("enrol-duplicate-in-file", enrol_file(STARTERS + "n1,PSO,P002\n"), ["row 3", "duplicate"]),
    ("enrol-blank-id", enrol_file(STARTERS.replace("N1", "")), ["blank staff ID"]),
    ("enrol-header-only", enrol_file("staff_id,grade,pdu_code\n"), ["no new starters"]),
    ("enrol-nul", enrol_file(STARTERS.replace("N1", "N\x001")), ["NUL"]),
    ("enrol-control-character", enrol_file(STARTERS.replace("N1", "N\x021")),
     ["control character"]),
    ("enrol-bad-bytes", enrol_file(STARTERS.encode().replace(b"N1", b"N\x8d1")),
     ["neither UTF-8 nor Windows-1252"]),
    ("enrol-corrupt-xlsx", enrol_file(b"PK\x03\x04broken", "starters.xlsx"),
     ["not a readable .xlsx"]),
    ("enrol-missing-column", enrol_file(STARTERS.replace("grade", "band")), ["'grade'"]),
    ("enrol-empty", enrol_file(""), ["file is empty"]),
    ("enrol-no-register", on_path(["enrol", "{run}", "--staff", "/x.csv"], "empty folder"),
     ["register"]),
    # transfer
    ("transfer-unknown-staff", run_command("transfer", "--staff-id", "Z9", "--to-pdu", "P001"),
     ["--staff-id 'Z9'", "no staff member"]),
    ("transfer-unknown-pdu", run_command("transfer", "--staff-id", "P000-S0", "--to-pdu", "Q1"),
     ["--to-pdu 'Q1'", "unknown PDU"]),
    ("transfer-same-pdu", run_command("transfer", "--staff-id", "P000-S0", "--to-pdu", "P000"),
     ["--to-pdu 'P000'", "already in PDU P000"]),
    ("transfer-no-register", on_path(["transfer", "{run}", "--staff-id", "A", "--to-pdu", "B"],
                                     "empty folder"), ["register"]),
    # monitor
    ("monitor-missing-file", lambda c, n: ["monitor", str(c.run), "--bookings", "/nope.csv"],
     ["file not found"]),
    ("monitor-folder", plain_file_as(lambda c, p: ["monitor", str(c.run), "--bookings", str(p)],
                                     "folder"), ["is a folder"]),
    ("monitor-missing-column", monitor_file(BOOKINGS.replace("status", "state")),
     ["missing column 'status'", "--map-column"]),
    ("monitor-unknown-status", monitor_file(BOOKINGS.replace(",booked,", ",Enrolled,")),
     ["row 2", "unknown status 'Enrolled'", "--map-status 'Enrolled=booked'"]),
    ("monitor-bad-date", monitor_file(BOOKINGS.replace("2022-03-05", "5th March")),
     ["row 2", "bad date '5th March'"]),
    ("monitor-us-date", monitor_file(BOOKINGS.replace("2022-03-05", "03/25/2022")),
     ["row 2", "month/day/year"]),
    ("monitor-impossible-date", monitor_file(BOOKINGS.replace("2022-03-05", "2022-02-30")),
     ["bad date '2022-02-30'"]),
    ("monitor-blank-date", monitor_file(BOOKINGS.replace("2022-03-05", "")), ["bad date ''"]),
    ("monitor-map-status-no-equals", monitor_file(BOOKINGS, "--map-status", "Enrolled"),
     ["--map-status 'Enrolled'", "Export value=status"]),
    ("monitor-map-status-unknown", monitor_file(BOOKINGS, "--map-status", "Enrolled=enroled"),
     ["'enroled' is not one of"]),
    ("monitor-map-column-unknown", monitor_file(BOOKINGS, "--map-column", "person=Who"),
     ["'person' is not one of"]),
    ("monitor-map-column-missing", monitor_file(BOOKINGS, "--map-column", "staff_id=Who"),
     ["missing column 'Who'"]),
    ("monitor-as-of-bad", monitor_file(BOOKINGS, "--as-of", "01/02/2022"), ["--as-of"]),
    ("monitor-duplicate-header", monitor_file(BOOKINGS.replace(",date", ",status")),
     ["'status' appears twice"]),
    ("monitor-ambiguous-header", monitor_file(BOOKINGS.replace(",date", ",Status")),
     ["both mean 'status'"]),
    ("monitor-nul", monitor_file(BOOKINGS.replace("booked", "boo\x00ked")), ["NUL"]),
    ("monitor-corrupt-xlsx", monitor_file(b"garbage", file_name="bookings.xlsx"),
     ["not a readable .xlsx"]),
    ("monitor-no-register", on_path(["monitor", "{run}", "--bookings", "/x.csv"], "empty folder"),
     ["register"]),
    # analyse
    ("analyse-missing-file", lambda c, n: ["analyse", str(c.bad / "none.csv"), "--outcome", "y"],
     ["file not found"]),
    ("analyse-folder", plain_file_as(lambda c, p: ["analyse", str(p), "--outcome", "y"],
                                     "folder"), ["is a folder"]),
    ("analyse-missing-outcome", analyse_file(OUTCOMES, "--outcome", "score", "--model", "cr2"),
     ["'score'"]),
    ("analyse-duplicate-header", analyse_file(OUTCOMES.replace("arm,pdu,y", "arm,pdu,arm"),
                                              "--outcome", "y"), ["'arm' appears twice"]),
    ("analyse-nul", analyse_file(OUTCOMES.replace("Control", "Con\x00trol", 1), "--outcome", "y"),
     ["NUL"]),
    ("analyse-register-empty-folder", on_path(["analyse", "--register", "{run}"],
                                              "empty folder"), ["register"]),
]

SUBPROCESS_ROWS = {"pdus-is-folder", "xlsx-truncated", "design-not-utf8", "monitor-us-date",
                   "enrol-bad-bytes", "guidance-template-syntax"}


def run_cli(name: str, argv: list[str]) -> tuple[int, str]:
    """Exit code and all output, in-process or (for a few rows) through a real subprocess."""
    if name in SUBPROCESS_ROWS:
        done = subprocess.run([*EVALKIT, *argv], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "200"})
        return done.returncode, done.stdout + done.stderr
    result = runner.invoke(app, argv, env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception   # a traceback: fail loudly with it
    return result.exit_code, result.output


def test_the_table_is_large_and_covers_every_command():
    commands = {row[0].split("-")[0] for row in CASES}
    assert len(CASES) >= 100
    assert len({row[0] for row in CASES}) == len(CASES)
    for command in ("pdus", "staff", "xlsx", "design", "assign", "verify", "enrol", "transfer",
                    "windows", "guidance", "publish", "monitor", "analyse", "lookup"):
        assert command in commands, command


@pytest.mark.parametrize(("name", "build", "fragments"), CASES, ids=[row[0] for row in CASES])
def test_bad_input_exits_2_with_a_message_and_changes_nothing(ctx, name, build, fragments):
    argv = build(ctx, name)
    before = snapshot(ctx.run)
    code, output = run_cli(name, argv)
    message = " ".join(output.split())
    assert code == 2, output
    assert "Traceback" not in output, output
    assert "error:" in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert snapshot(ctx.run) == before
    out = ctx.out(name)
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


def test_missing_covariate_policy_leaves_the_column_out_and_says_so(tmp_path):
    pdus = small_pdus().astype({"headcount": object})
    pdus.loc[3, "headcount"] = "forty"
    design = write_trial(tmp_path / "trial", pdus=pdus)
    design.write_text(design.read_text().replace(
        "[inputs]\n", '[inputs]\nmissing_covariates = "leave_out"\n'))
    out = tmp_path / "out"
    result = runner.invoke(app, ["assign", str(design), "--out", str(out)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    message = " ".join(result.output.split())
    assert "'headcount' left out of the balance check: row 5 is 'forty'" in message
    balance = pd.read_csv(out / "balance.csv")
    assert "mean_headcount" not in balance.columns
    assert "mean_caseload_per_practitioner" in balance.columns


def test_lookup_by_a_person_s_name_says_names_are_not_searched(ctx):
    result = runner.invoke(app, ["lookup", str(ctx.run), "Person P000 0"])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "names are not searched" in message and "staff ID or email" in message
    found = runner.invoke(app, ["lookup", str(ctx.run), "p000-s0"])
    assert found.exit_code == 0 and "P000-S0" in found.output
