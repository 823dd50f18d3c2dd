"""Manifests: every format, every rule, every problem reported at once with file:line."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchcopy import manifest
from batchcopy.errors import ManifestError
from batchcopy.facts import NAME_RULE, lightsail_regions
from batchcopy.jobs import CopyJob
from batchcopy.manifest import Manifest, files, load_manifest

HEADER = (
    "source_region,target_region,source_snapshot_name,source_resource_name,restore_date,"
    "use_latest_restorable_auto_snapshot,target_snapshot_name"
)
MANUAL = CopyJob(
    line=2,
    source_region="us-east-1",
    target_region="eu-west-1",
    source_snapshot_name="web-1-snap",
    target_snapshot_name="web-1-copy",
)
DATED = CopyJob(
    line=3,
    source_region="us-east-1",
    target_region="eu-west-2",
    source_resource_name="web-1",
    restore_date="2026-11-20",
    target_snapshot_name="web-1-auto",
)
LATEST = CopyJob(
    line=4,
    source_region="us-east-1",
    target_region="eu-west-1",
    source_resource_name="data-1",
    use_latest=True,
    target_snapshot_name="data-1-latest",
)
CSV_TEXT = f"""{HEADER}
us-east-1,eu-west-1,web-1-snap,,,,web-1-copy
us-east-1,eu-west-2,,web-1,2026-11-20,,web-1-auto
us-east-1,eu-west-1,,data-1,,TRUE,data-1-latest
"""


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def problems_of(source: str | Path, **kwargs: object) -> list[str]:
    """The problems load_manifest reports, as printed."""
    with pytest.raises(ManifestError) as info:
        load_manifest(source, **kwargs)  # type: ignore[arg-type]
    return [str(problem) for problem in info.value.problems]


def at(jobs: list[CopyJob], *lines: int) -> list[CopyJob]:
    """The jobs renumbered to the lines they sit on in another format."""
    return [dataclasses.replace(job, line=line) for job, line in zip(jobs, lines, strict=True)]


def as_json(job: CopyJob) -> dict[str, object]:
    """A job as a JSON object in camelCase, the way the API spells it."""
    return {
        "sourceRegion": job.source_region,
        "targetRegion": job.target_region,
        **job.copy_request(),
    }


# -- formats ----------------------------------------------------------------------------------


def test_csv_manifest_gives_its_jobs_in_file_order(tmp_path: Path) -> None:
    """A CSV manifest is checked, counted per target region and streamed back as jobs."""
    path = write(tmp_path, "jobs.csv", CSV_TEXT)
    loaded = load_manifest(path)
    assert loaded.name == str(path)
    assert loaded.path != path  # a private copy, as checked
    assert loaded.path.stat().st_mode & 0o777 == 0o600
    assert loaded.format == "csv"
    assert loaded.total == 3
    assert dict(loaded.per_region) == {"eu-west-1": 2, "eu-west-2": 1}
    assert loaded.sha256 == hashlib.sha256(CSV_TEXT.encode()).hexdigest()
    assert list(loaded.jobs()) == [MANUAL, DATED, LATEST]
    assert list(loaded.jobs()) == [MANUAL, DATED, LATEST]  # read again, same jobs


def test_json_array_gives_the_line_each_job_starts_on(tmp_path: Path) -> None:
    """A pretty-printed JSON array reports each job at the line its object opens."""
    text = json.dumps([as_json(MANUAL), as_json(DATED), as_json(LATEST)], indent=2)
    loaded = load_manifest(write(tmp_path, "jobs.json", text))
    assert loaded.format == "json"
    assert list(loaded.jobs()) == at([MANUAL, DATED, LATEST], 2, 8, 15)


def test_json_defaults_fill_what_jobs_leave_out(tmp_path: Path) -> None:
    """``{"defaults": ..., "jobs": [...]}`` fills missing fields, before or after the jobs."""
    jobs = '[\n{"sourceSnapshotName": "web-1-snap", "targetSnapshotName": "web-1-copy"},\n' + (
        '{"targetRegion": "eu-west-2", "sourceResourceName": "web-1", "restoreDate": '
        '"2026-11-20", "targetSnapshotName": "web-1-auto", "sourceRegion": null}]'
    )
    defaults = '{"source_region": "us-east-1", "targetRegion": "eu-west-1"}'
    first = f'{{"defaults": {defaults},\n"jobs": {jobs}}}'
    last = f'{{"jobs": {jobs},\n"defaults": {defaults}}}'
    for text in (first, last):
        loaded = load_manifest(write(tmp_path, "jobs.json", text))
        lines = (3, 4) if text is first else (2, 3)
        assert list(loaded.jobs()) == at([MANUAL, DATED], *lines)


def test_json_lines_skips_blank_lines_and_counts_them(tmp_path: Path) -> None:
    """JSON Lines reads one object per line; blank lines are allowed and still counted."""
    text = "\n".join([json.dumps(as_json(MANUAL)), "", "  ", json.dumps(as_json(DATED)), ""])
    for name in ("jobs.jsonl", "jobs.ndjson"):
        loaded = load_manifest(write(tmp_path, name, text))
        assert loaded.format == "jsonl"
        assert list(loaded.jobs()) == at([MANUAL, DATED], 1, 4)


def test_stdin_is_spooled_so_jobs_can_be_read_again() -> None:
    """Stdin ("-") is spooled to a temporary copy for jobs(); messages call it <stdin>."""
    loaded = load_manifest("-", stdin=io.BytesIO(CSV_TEXT.encode()))
    assert (loaded.name, loaded.format, loaded.total) == ("<stdin>", "csv", 3)
    assert loaded.path.read_text() == CSV_TEXT
    assert list(loaded.jobs()) == [MANUAL, DATED, LATEST]
    assert problems_of("-", stdin=io.BytesIO(b"{")) == [
        "<stdin>:1: not valid JSON: Expecting property name enclosed in double quotes at column 2"
    ]


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (CSV_TEXT, "csv"),
        ("\n  " + json.dumps([as_json(MANUAL)]), "json"),
        (json.dumps({"jobs": [as_json(MANUAL)]}), "json"),
        (json.dumps({"jobs": [as_json(MANUAL)]}, indent=1), "json"),
        (json.dumps(as_json(MANUAL)) + "\n" + json.dumps(as_json(DATED)), "jsonl"),
        (json.dumps(as_json(MANUAL)), "jsonl"),
    ],
    ids=["csv", "json-array", "json-document", "json-indented", "jsonl", "jsonl-one-line"],
)
def test_format_is_sniffed_from_stdin_and_unknown_extensions(
    tmp_path: Path, content: str, fmt: str
) -> None:
    """Without a known extension, the first bytes tell CSV, JSON and JSON Lines apart."""
    assert load_manifest("-", stdin=io.BytesIO(content.encode())).format == fmt
    assert load_manifest(write(tmp_path, "jobs.txt", content)).format == fmt


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bom.csv", b"\xef\xbb\xbf" + CSV_TEXT.encode()),
        ("crlf.csv", CSV_TEXT.replace("\n", "\r\n").encode()),
        ("mixed.csv", CSV_TEXT.replace("\n", "\r\n", 2).encode()),
        ("bom.json", b"\xef\xbb\xbf[\r\n" + json.dumps(as_json(MANUAL)).encode() + b"\r\n]"),
        ("bom.jsonl", b"\xef\xbb\xbf\r\n" + json.dumps(as_json(MANUAL)).encode() + b"\r\n"),
        ("bom.txt", b"\xef\xbb\xbf" + CSV_TEXT.encode()),
    ],
)
def test_byte_order_marks_and_crlf_line_ends_are_accepted(
    tmp_path: Path, name: str, content: bytes
) -> None:
    """UTF-8 with or without BOM and \\n, \\r\\n or mixed line ends all read the same jobs."""
    jobs = list(load_manifest(write(tmp_path, name, content)).jobs())
    assert jobs[0] == dataclasses.replace(MANUAL, line=2)


def test_camel_case_columns_are_accepted(tmp_path: Path) -> None:
    """CSV headers may use the API's camelCase names, in any order."""
    text = (
        "targetSnapshotName,sourceRegion,targetRegion,sourceResourceName,"
        "useLatestRestorableAutoSnapshot\ndata-1-latest,us-east-1,eu-west-1,data-1,yes\n"
    )
    assert list(load_manifest(write(tmp_path, "jobs.csv", text)).jobs()) == at([LATEST], 2)


def test_region_defaults_fill_empty_cells_and_missing_columns(tmp_path: Path) -> None:
    """source_region/target_region arguments fill empty cells; a cell still wins."""
    text = "source_snapshot_name,target_region,target_snapshot_name\nweb-1-snap, ,web-1-copy\n"
    text += "web-1-snap,eu-west-2,web-1-other\n"
    loaded = load_manifest(
        write(tmp_path, "jobs.csv", text), source_region="us-east-1", target_region="eu-west-1"
    )
    assert (loaded.source_region, loaded.target_region) == ("us-east-1", "eu-west-1")
    assert dict(loaded.per_region) == {"eu-west-1": 1, "eu-west-2": 1}
    assert next(loaded.jobs()) == MANUAL


def test_a_quoted_cell_over_several_lines_keeps_line_numbers_right(tmp_path: Path) -> None:
    """A CSV record is reported at the line it starts on, even after a multi-line cell."""
    text = f'{HEADER}\nus-east-1,eu-west-1,"bad\nname",,,,x1\nus-east-1,eu-west-1,,,,,zz\n'
    assert problems_of(write(tmp_path, "m.csv", text)) == [
        f'{tmp_path}/m.csv:2: source_snapshot_name: "bad\\nname" is not a valid name: ' + NAME_RULE,
        f"{tmp_path}/m.csv:4: source_snapshot_name: missing: give "
        "source_snapshot_name (a manual snapshot) or source_resource_name (automatic ones)",
    ]


# -- spreadsheets -----------------------------------------------------------------------------

EXCEL = (
    "\ufeffSource Region;Target Region;Source Snapshot Name;Source Resource Name;Restore Date;"
    "Use Latest Restorable Auto Snapshot;Target Snapshot Name\r\n"
    'us-east-1;"eu-west-1;ap-south-1";web-1-snap;;;;web-1-copy\r\n'
    ";;;;;;\r\n"
    "us-east-1;eu-west-2;;web-1;2026-11-20;;web-1-auto\r\n"
)


def test_a_semicolon_csv_as_excel_saves_it_is_read(tmp_path: Path) -> None:
    """Excel's ";" CSV (BOM, CRLF, Title Case header, quoted region list) gives the same jobs."""
    loaded = load_manifest(write(tmp_path, "jobs.csv", EXCEL))
    assert list(loaded.jobs()) == [*fanned(MANUAL, "eu-west-1", "ap-south-1"), *at([DATED], 4)]
    assert loaded.sha256 == hashlib.sha256(EXCEL.encode()).hexdigest()
    assert dict(loaded.per_region) == {"ap-south-1": 1, "eu-west-1": 1, "eu-west-2": 1}


def test_a_semicolon_csv_reports_problems_at_their_lines(tmp_path: Path) -> None:
    """Problems in a ";" file name the line and field, as in a comma file."""
    path = write(tmp_path, "jobs.csv", EXCEL.replace("2026-11-20", "2026-13-01"))
    assert problems_of(path) == [
        f'{path}:4: restore_date: "2026-13-01" is not a real date written YYYY-MM-DD, like '
        "2026-11-20"
    ]


def test_blank_rows_before_a_semicolon_header_are_skipped(tmp_path: Path) -> None:
    """Blank rows above a ";" header neither hide its separator nor shift line numbers."""
    text = "\ufeff\r\n;;;;;;\r\n" + EXCEL.removeprefix("\ufeff")
    loaded = load_manifest(write(tmp_path, "jobs.csv", text))
    assert list(loaded.jobs()) == [
        *fanned(MANUAL, "eu-west-1", "ap-south-1", line=4),
        *at([DATED], 6),
    ]


def test_tab_delimited_text_is_read(tmp_path: Path) -> None:
    """A spreadsheet's tab-delimited text reads the same jobs; ";" in a cell lists regions."""
    text = CSV_TEXT.replace(",", "\t").replace("\teu-west-1\tweb", "\teu-west-1;ap-south-1\tweb")
    loaded = load_manifest(write(tmp_path, "jobs.txt", text))
    assert loaded.format == "csv"
    assert list(loaded.jobs()) == [*fanned(MANUAL, "eu-west-1", "ap-south-1"), DATED, LATEST]


@pytest.mark.parametrize(
    "header",
    [
        "Source Region,Target Region,Source Snapshot Name,Target Snapshot Name",
        "source-region,target-region,source-snapshot-name,target-snapshot-name",
        "SOURCE_REGION,TARGET_REGION,SOURCE_SNAPSHOT_NAME,TARGET_SNAPSHOT_NAME",
        "SourceRegion, Target_Region ,source  snapshot-name,targetSnapshotName",
    ],
    ids=["title", "kebab", "upper", "mixed"],
)
def test_column_names_ignore_case_spaces_and_hyphens(tmp_path: Path, header: str) -> None:
    """``Source Region``, ``source-region`` and ``SOURCE_REGION`` all name source_region."""
    path = write(tmp_path, "jobs.csv", f"{header}\nus-east-1,eu-west-1,web-1-snap,web-1-copy\n")
    assert list(load_manifest(path).jobs()) == [MANUAL]


def test_two_spellings_of_one_column_are_refused(tmp_path: Path) -> None:
    """``Source Region`` beside ``source_region`` is one field twice, said so on line 1."""
    path = write(tmp_path, "m.csv", f"{HEADER},Source Region\n{ROW},us-east-1\n")
    assert problems_of(path) == [
        f"{path}:1: source_region: two columns (source_region, Source Region); keep one"
    ]


_FIELDS_HINT = (
    "source_region, target_region, source_snapshot_name, source_resource_name, restore_date, "
    "use_latest_restorable_auto_snapshot, target_snapshot_name, account (case, spaces, hyphens "
    "and camelCase do not matter)"
)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "Quelle;Ziel;Quellname;Zielname",
            'no column is a manifest field: "Quelle", "Ziel", "Quellname", "Zielname" (columns '
            "separated by semicolons); write a header such as "
            "source_region;target_region;source_snapshot_name;target_snapshot_name, naming "
            f"columns from {_FIELDS_HINT}",
        ),
        (
            "source_region|target_region|source_snapshot_name|target_snapshot_name",
            'no column is a manifest field: "source_region|target_region|source_snapshot_name|'
            'target_snap..." (read as one column: the line has no comma, semicolon or tab); '
            "write a header such as "
            "source_region,target_region,source_snapshot_name,target_snapshot_name, naming "
            f"columns from {_FIELDS_HINT}",
        ),
        (
            "Source Regoin\tTarget Region\tSource Snapshot Name\tTarget Snapshot Name\tNotes",
            'unknown columns "Source Regoin" (did you mean source_region?), "Notes" (columns '
            f"separated by tabs); name columns from {_FIELDS_HINT}",
        ),
    ],
    ids=["semicolons", "one-column", "tabs"],
)
def test_an_unknown_header_says_what_was_found_and_what_to_write(
    tmp_path: Path, header: str, message: str
) -> None:
    """Columns unknown even after normalising are one line-1 problem naming them and the fix."""
    path = write(tmp_path, "m.csv", f"{header}\nus-east-1;eu-west-1;web-1-snap;web-1-copy\n")
    found = problems_of(path)
    assert found[0] == f"{path}:1: header: {message}"
    assert all(p.startswith(f"{path}:1: ") for p in found)  # the rows are not read


def test_an_unquoted_region_list_in_a_semicolon_file_says_to_quote_it(tmp_path: Path) -> None:
    """With ";" between columns, an unquoted ``eu-west-1;ap-south-1`` is refused with the fix."""
    text = "source_region;target_region;source_snapshot_name;target_snapshot_name\n"
    text += "us-east-1;eu-west-1;ap-south-1;web-1-snap;web-1-copy\n"
    path = write(tmp_path, "m.csv", text)
    assert problems_of(path) == [
        f"{path}:2: cell 5 has a value but no column name; in a file with semicolons between "
        'columns, quote a cell that lists several regions: "eu-west-1;ap-south-1"'
    ]


def test_semicolons_in_a_comma_files_rows_never_change_the_separator(tmp_path: Path) -> None:
    """Only the header decides the separator: region lists in rows still fan out."""
    regions = ["eu-west-1", "eu-west-2", "ap-south-1", "us-west-2", "eu-central-1"]
    text = "source_region,target_region,source_snapshot_name,target_snapshot_name\n"
    text += f"us-east-1,{';'.join(regions)},web-1-snap,web-1-copy\n"
    loaded = load_manifest(write(tmp_path, "jobs.txt", text))
    assert list(loaded.jobs()) == fanned(MANUAL, *regions)


# -- problems ---------------------------------------------------------------------------------

ROW = "us-east-1,eu-west-1,web-1-snap,,,,web-1-copy"


@pytest.mark.parametrize(
    ("name", "content", "where", "message"),
    [
        ("m.csv", f"{HEADER},colour\n{ROW},red\n", "1: header", 'unknown column "colour" ('),
        (
            "m.csv",
            "source_region,target_region,source_snapshot_name\n",
            "1: target_snapshot_name",
            "no such column",
        ),
        (
            "m.csv",
            "source_region,target_region,target_snapshot_name\n",
            "1: source_snapshot_name",
            "no such column: add source_snapshot_name",
        ),
        (
            "m.csv",
            "target_region,source_snapshot_name,target_snapshot_name\nx,y,z\n",
            "1: source_region",
            "no such column: add it (or give a default)",
        ),
        (
            "m.csv",
            f"{HEADER},sourceRegion\n{ROW},us-east-1\n",
            "1: source_region",
            "two columns (source_region, sourceRegion); keep one",
        ),
        ("m.csv", f"{HEADER}\n{ROW},stray\n", "2", "cell 8 has a value but no column name"),
        (
            "m.csv",
            "source_region,target_region,,target_snapshot_name,source_snapshot_name\n"
            "us-east-1,eu-west-1,x,web-1-copy,web-1-snap\n",
            "2",
            "cell 3 has a value but no column name",
        ),
        (
            "m.csv",
            f"{HEADER}\n,eu-west-1,web-1-snap,,,,web-1-copy\n",
            "2: source_region",
            "missing: set it on the job or give a default",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,,web-1-snap,,,,web-1-copy\n",
            "2: target_region",
            "missing",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,web-1-snap,,,,\n",
            "2: target_snapshot_name",
            "missing: name the copy",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-est-1,eu-west-1,web-1-snap,,,,web-1-copy\n",
            "2: source_region",
            '"us-est-1" is not a Lightsail region',
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,mars-1,web-1-snap,,,,web-1-copy\n",
            "2: target_region",
            "`aws lightsail get-regions` lists them all",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,web-1-snap,web-1,,,web-1-copy\n",
            "2: source_snapshot_name",
            "not both",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,,,,,web-1-copy\n",
            "2: source_snapshot_name",
            "missing: give source_snapshot_name",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,,web-1,,,web-1-copy\n",
            "2: restore_date",
            "missing: an automatic snapshot needs it or use_latest_restorable_auto_snapshot=true",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,,web-1,,false,web-1-copy\n",
            "2: restore_date",
            "missing",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,,web-1,2026-11-20,1,web-1-copy\n",
            "2: restore_date",
            "not both",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,web-1-snap,,2026-11-20,,web-1-copy\n",
            "2: restore_date",
            "only for automatic snapshots",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,web-1-snap,,,yes,web-1-copy\n",
            "2: use_latest_restorable_auto_snapshot",
            "only for automatic snapshots",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,,web-1,2026-02-30,,web-1-copy\n",
            "2: restore_date",
            '"2026-02-30" is not a real date written YYYY-MM-DD',
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,,web-1,20/11/2026,,web-1-copy\n",
            "2: restore_date",
            "is not a real date",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,,web-1,,maybe,web-1-copy\n",
            "2: use_latest_restorable_auto_snapshot",
            '"maybe" is not true or false',
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,web-1-snap,,,,-copy\n",
            "2: target_snapshot_name",
            '"-copy" is not a valid name: 2-255 characters',
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,web 1,,,,web-1-copy\n",
            "2: source_snapshot_name",
            "is not a valid name",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,,w,2026-11-20,,web-1-copy\n",
            "2: source_resource_name",
            '"w" is not a valid name',
        ),
        (
            "m.csv",
            f'{HEADER}\nus-east-1,eu-west-1,"web-1-snap\rx",,,,web-1-copy\n',
            "2",
            "is not a valid name",
        ),
        (
            "m.csv",
            f"{HEADER}\nus-east-1,eu-west-1,web\r1,,,,web-1-copy\n",
            "2",
            r"a carriage return (\r) inside a row",
        ),
        (
            "m.json",
            '[\n{"sourceRegion": "us-east-1", "colour": 1}]',
            '2: "colour"',
            "unknown field; use source_region",
        ),
        (
            "m.json",
            '[{"sourceRegion": "us-east-1", "source_region": "us-east-1"}]',
            "1: source_region",
            "given twice (sourceRegion, source_region); keep one",
        ),
        (
            "m.jsonl",
            '{"account": "200000000001", "account": "200000000002"}\n',
            "1: account",
            "given twice; keep one",  # JSON would keep the last silently: another account
        ),
        (
            "m.json",
            '[\n{"targetSnapshotName": "a-dr", "targetSnapshotName": "b-dr"}]',
            "2: target_snapshot_name",
            "given twice; keep one",
        ),
        (
            "m.json",
            '{"jobs": [],\n"jobs": []}',
            "2: jobs",
            "given twice; keep one",  # the first array's jobs would be lost
        ),
        (
            "m.json",
            '{"defaults": {"account": "200000000001"},\n"defaults": {}, "jobs": []}',
            "2: defaults",
            "given twice; keep one",
        ),
        (
            "m.json",
            '[\n\n  {"sourceRegion": "us-east-1", "targetRegion": "eu-west-1",\n'
            '"sourceSnapshotName": 7, "targetSnapshotName": "web-1-copy"}]',
            "3: source_snapshot_name",
            "must be a string, not a number",
        ),
        (
            "m.json",
            '[{"sourceRegion": "us-east-1", "targetRegion": "eu-west-1", '
            '"sourceResourceName": "web-1", "useLatestRestorableAutoSnapshot": 1, '
            '"targetSnapshotName": "web-1-copy"}]',
            "1: use_latest_restorable_auto_snapshot",
            "must be true or false, not a number",
        ),
        ("m.json", "[\n1,\n[]]", "2", "a job must be a JSON object, not a number"),
        ("m.json", '{"defaults": [], "jobs": []}', "1: defaults", "must be an object"),
        (
            "m.json",
            '{"defaults": {"sourceRegion": "nowhere"}, "jobs": [{}]}',
            "1: source_region",
            'the default "nowhere" is not a Lightsail region',
        ),
        ("m.json", '{"jobs": {}}', "1: jobs", "must be an array, not an object"),
        ("m.json", '{"jobs": [], "extra": 1}', '1: "extra"', 'unknown key; use "defaults"'),
        ("m.json", '{"sourceRegion": "us-east-1"}', "1: jobs", "or .jsonl for one job per line"),
        ("m.json", '"jobs"', "1", 'expected an array of jobs, or an object with "jobs"'),
        ("m.json", '[\n{"a": 1},\n{"b": 2}\n}', "4", "not valid JSON: Expecting ',' delimiter"),
        ("m.json", "[\n{},\n]", "3", "not valid JSON: Expecting value at column 1"),
        ("m.json", '{"jobs": [],}', "1", "not valid JSON"),
        ("m.json", "[]\n[]", "2", "not valid JSON: Extra data at column 1"),
        ("m.json", "[" * 100_000, "1", "not valid JSON: nested too deeply"),
        (
            "m.jsonl",
            '{"sourceRegion": "us-east-1"}\n{"sourceRegion": \n',
            "2",
            "not valid JSON (Expecting value at column 17): one object per line",
        ),
        ("m.jsonl", "\n[1]\n", "2", "a job must be a JSON object, not an array"),
        ("m.jsonl", "[" * 100_000, "1", "not valid JSON: nested too deeply"),
    ],
)
def test_each_rule_is_reported_at_its_file_line_and_field(
    tmp_path: Path, name: str, content: str, where: str, message: str
) -> None:
    """Every broken rule names the file, the line, the field, and what is wrong."""
    path = write(tmp_path, name, content)
    found = problems_of(path)
    assert any(p.startswith(f"{path}:{where}: ") and message in p for p in found), found


def test_a_bad_region_default_is_reported_once(tmp_path: Path) -> None:
    """An invalid default region is one problem, not one per job."""
    path = write(tmp_path, "m.csv", CSV_TEXT)
    assert problems_of(path, target_region="eu-wets-1") == [
        f'{path}: target_region: the default "eu-wets-1" is not a Lightsail region (did you '
        "mean eu-west-1?); valid ones include us-east-1, us-east-2, us-west-1; "
        "`aws lightsail get-regions` lists them all"
    ]


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    """One run lists every problem in the manifest, not just the first."""
    text = f"{HEADER}\n{ROW}\nus-est-1,eu-west-1,,web-1,,,x\n,,,,,,\n{ROW.replace('1-copy', '2')}\n"
    text += "us-east-1,eu-west-1,web-1-snap,,2026-13-01,,web-1-3\n"
    found = problems_of(write(tmp_path, "m.csv", text))
    assert [p.split(": ")[0:2] for p in found] == [
        [f"{tmp_path}/m.csv:3", "source_region"],
        [f"{tmp_path}/m.csv:3", "target_snapshot_name"],
        [f"{tmp_path}/m.csv:3", "restore_date"],
        [f"{tmp_path}/m.csv:6", "restore_date"],
    ]


def test_problems_are_capped_and_the_rest_counted(tmp_path: Path) -> None:
    """Past MAX_PROBLEMS, problems are counted rather than listed."""
    text = HEADER + "\n" + "us-east-1,eu-west-1,web-1-snap,,,,-\n" * 1200
    with pytest.raises(ManifestError) as info:
        load_manifest(write(tmp_path, "m.csv", text))
    assert len(info.value.problems) == manifest.MAX_PROBLEMS
    assert info.value.more == 200
    assert str(info.value).endswith("... and 200 more problems")


def test_duplicate_targets_name_both_lines(tmp_path: Path) -> None:
    """A target named twice in one region is reported at the later line, naming the first."""
    text = f"{HEADER}\n{ROW}\n{ROW.replace('eu-west-1', 'eu-west-2')}\n\n{ROW}\n"
    assert problems_of(write(tmp_path, "m.csv", text)) == [
        f"{tmp_path}/m.csv:5: target_snapshot_name: eu-west-1/web-1-copy is already the target "
        "of line 2; targets must be unique"
    ]


def test_many_targets_are_checked_for_duplicates(tmp_path: Path) -> None:
    """Duplicate finding stays right past the index's first growth steps."""
    rows = [f"us-east-1,eu-west-1,web-1-snap,,,,copy-{i}" for i in range(5000)]
    path = write(tmp_path, "m.csv", "\n".join([HEADER, *rows, rows[1234]]))
    assert problems_of(path) == [
        f"{path}:5002: target_snapshot_name: eu-west-1/copy-1234 is already the target of "
        "line 1236; targets must be unique"
    ]
    path.write_text("\n".join([HEADER, *rows]))
    assert load_manifest(path).total == 5000


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("m.csv", ""),
        ("m.csv", HEADER + "\n\n,,,,,,\n"),
        ("m.json", "[]"),
        ("m.json", "  \n"),
        ("m.json", '{"jobs": []}'),
        ("m.jsonl", "\n\n"),
        ("m.txt", ""),
    ],
)
def test_an_empty_manifest_is_a_problem(tmp_path: Path, name: str, content: str) -> None:
    """A manifest without jobs is refused, whatever its format."""
    path = write(tmp_path, name, content)
    assert problems_of(path) == [f"{path}: no jobs: a manifest needs at least one"]


def test_an_oversized_field_is_reported_without_echoing_it(tmp_path: Path) -> None:
    """A value over MAX_FIELD_CHARS says its length and the limit, not the value."""
    long_name = "x" * 5000
    found = problems_of(write(tmp_path, "m.csv", f"{HEADER}\n{ROW[:-10]}{long_name}\n"))
    assert found == [
        f"{tmp_path}/m.csv:2: target_snapshot_name: too long (5000 characters; the limit is 1024)"
    ]


def test_a_giant_csv_cell_or_line_is_reported_not_a_crash(tmp_path: Path) -> None:
    """An open quote that runs on, or a line over 1 MiB, is a problem at its line."""
    runaway = "y" * 1000 + "\n"
    text = f'{HEADER}\n{ROW}\nus-east-1,"{runaway * 1100}\n'
    found = problems_of(write(tmp_path, "m.csv", text))
    assert found == [
        f"{tmp_path}/m.csv:3: a cell over 1.0 MiB long; is a quote left open? (read no further)"
    ]
    huge = "y" * (2 * 1024 * 1024)
    found = problems_of(write(tmp_path, "m.csv", f"{HEADER}\n{ROW}\n{huge}\n{ROW}\n"))
    assert found == [
        f"{tmp_path}/m.csv:3: line too long (2.0 MiB; the limit is 1.0 MiB)",
        f"{tmp_path}/m.csv:4: target_snapshot_name: eu-west-1/web-1-copy is already the target "
        "of line 2; targets must be unique",
    ]


@pytest.mark.parametrize(
    ("name", "limit", "advice"),
    [
        ("m.csv", "MAX_FILE_BYTES", "the limit for CSV is 100 bytes): split it up"),
        (
            "m.json",
            "MAX_JSON_BYTES",
            "the limit for JSON is 100 bytes): use CSV or JSON Lines, which are streamed",
        ),
    ],
)
def test_a_file_over_the_size_limit_is_one_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, limit: str, advice: str
) -> None:
    """A manifest over its format's size limit says its size, the limit and what to do."""
    monkeypatch.setattr(files, limit, 100)
    content = CSV_TEXT * 5 if name.endswith(".csv") else json.dumps([as_json(MANUAL)] * 5)
    found = problems_of(write(tmp_path, name, content))
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path}/{name}: too large (")
    assert advice in found[0]


def test_stdin_over_the_size_limit_is_refused_without_reading_it_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stdin is spooled only up to the limit, then refused."""
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 100)
    monkeypatch.setattr(files, "MAX_JSON_BYTES", 50)
    stream = io.BytesIO(CSV_TEXT.encode() * 100)
    assert problems_of("-", stdin=stream) == [
        "<stdin>: too large (over 100 bytes; the limit for CSV is 100 bytes): split it up"
    ]
    assert stream.tell() == 101


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("m.csv", CSV_TEXT.encode() + b"us-east-1,eu-west-1,caf\xe9,,,,web-1-2\n", "5"),
        ("m.csv", b"source_region,\xff\n", "1"),
        ("m.jsonl", b'\n{"sourceRegion": "\xc3"}\n', "2"),
        ("m.json", b'[\n\n{"sourceRegion": "\xc3"}]', "3"),
    ],
)
def test_invalid_utf8_names_its_line(tmp_path: Path, name: str, content: bytes, where: str) -> None:
    """Bytes that are not UTF-8 are one problem at their line, asking for UTF-8."""
    path = write(tmp_path, name, content)
    found = problems_of(path)
    assert len(found) == 1
    assert found[0].startswith(f"{path}:{where}: not valid UTF-8 (byte 0x")
    assert "UTF-8" in found[0]


def test_a_missing_file_or_a_folder_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    """A path that cannot be read is reported like any other manifest problem."""
    assert problems_of(tmp_path / "nope.csv") == [
        f"{tmp_path}/nope.csv: cannot read it: No such file or directory"
    ]
    assert problems_of(tmp_path) == [f"{tmp_path}: cannot read it: Is a directory"]


def test_a_pipe_given_by_path_is_spooled(tmp_path: Path) -> None:
    """A named pipe (as bash's <(...) gives) is read once and spooled, so jobs() works."""
    fifo = tmp_path / "jobs.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=(CSV_TEXT,), daemon=True)
    writer.start()
    loaded = load_manifest(fifo)
    writer.join()
    assert loaded.name == str(fifo)
    assert loaded.path != fifo
    assert list(loaded.jobs()) == [MANUAL, DATED, LATEST]


def test_jobs_are_the_rows_checked_whatever_happens_to_the_file(tmp_path: Path) -> None:
    """The jobs are read from a copy made as the manifest was checked: editing or removing
    the file afterwards changes nothing; a copy tampered with is refused, not guessed at."""
    path = write(tmp_path, "m.csv", CSV_TEXT)
    loaded = load_manifest(path)
    path.write_text(CSV_TEXT.replace("web-1-auto", "-"))
    assert list(loaded.jobs()) == [MANUAL, DATED, LATEST]
    path.unlink()
    assert list(loaded.jobs()) == [MANUAL, DATED, LATEST]
    loaded.path.write_text(CSV_TEXT.replace("web-1-auto", "-"))
    jobs = loaded.jobs()
    with pytest.raises(ManifestError, match="changed since it was checked"):
        next(jobs)
    loaded.path.unlink()
    with pytest.raises(ManifestError, match="cannot read it"):
        next(loaded.jobs())


def test_the_manifest_is_a_frozen_value(tmp_path: Path) -> None:
    """A loaded manifest cannot be changed by accident, nor its counts."""
    loaded = load_manifest(write(tmp_path, "m.csv", CSV_TEXT))
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.total = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        loaded.per_region["eu-west-1"] = 0  # type: ignore[index]
    assert isinstance(loaded, Manifest)


# -- fan-out ----------------------------------------------------------------------------------


def fanned(job: CopyJob, *regions: str, line: int | None = None) -> list[CopyJob]:
    """The jobs one row naming several target regions makes, all on the row's line."""
    line = job.line if line is None else line
    return [dataclasses.replace(job, target_region=r, line=line) for r in regions]


def test_a_csv_cell_with_semicolons_makes_a_job_per_region(tmp_path: Path) -> None:
    """``eu-west-1; ap-south-1`` in a CSV cell copies to both, in that order, on the row's line."""
    text = CSV_TEXT.replace(",eu-west-1,web-1-snap,", ", eu-west-1 ;ap-south-1 ,web-1-snap,")
    loaded = load_manifest(write(tmp_path, "jobs.csv", text))
    assert list(loaded.jobs()) == [*fanned(MANUAL, "eu-west-1", "ap-south-1"), DATED, LATEST]


def test_a_json_list_of_regions_makes_a_job_per_region(tmp_path: Path) -> None:
    """A JSON ``targetRegion`` list gives one job per region, all at the line the job opens."""
    row = {**as_json(MANUAL), "targetRegion": ["ap-south-1", "eu-west-1", "us-west-2"]}
    text = json.dumps([row, as_json(DATED)], indent=2)
    loaded = load_manifest(write(tmp_path, "jobs.json", text))
    assert list(loaded.jobs()) == [
        *fanned(MANUAL, "ap-south-1", "eu-west-1", "us-west-2"),
        *at([DATED], 12),  # the list takes a line per region
    ]


def test_a_json_lines_string_with_semicolons_makes_a_job_per_region(tmp_path: Path) -> None:
    """In JSON Lines, ``"targetRegion": "eu-west-1;eu-west-2"`` fans out like a CSV cell."""
    row = {**as_json(DATED), "targetRegion": "eu-west-1;eu-west-2"}
    text = json.dumps(as_json(MANUAL)) + "\n" + json.dumps(row) + "\n"
    loaded = load_manifest(write(tmp_path, "jobs.jsonl", text))
    assert list(loaded.jobs()) == [
        *at([MANUAL], 1),
        *fanned(DATED, "eu-west-1", "eu-west-2", line=2),
    ]


def test_region_defaults_may_name_several_regions(tmp_path: Path) -> None:
    """A JSON default list, or a --target-region with ";", fans out every row that uses it."""
    job = {"sourceSnapshotName": "web-1-snap", "targetSnapshotName": "web-1-copy"}
    defaults = {"sourceRegion": "us-east-1", "targetRegion": ["eu-west-1", "ap-south-1"]}
    text = json.dumps({"defaults": defaults, "jobs": [job]})
    loaded = load_manifest(write(tmp_path, "jobs.json", text))
    assert list(loaded.jobs()) == fanned(MANUAL, "eu-west-1", "ap-south-1", line=1)
    text = "source_snapshot_name,target_region,target_snapshot_name\nweb-1-snap,,web-1-copy\n"
    loaded = load_manifest(
        write(tmp_path, "jobs.csv", text),
        source_region="us-east-1",
        target_region="eu-west-1;ap-south-1",
    )
    assert list(loaded.jobs()) == fanned(MANUAL, "eu-west-1", "ap-south-1")


def test_fanned_out_jobs_are_counted_per_region_and_in_total(tmp_path: Path) -> None:
    """total and per_region count each copy a row fans out to, not the rows."""
    text = CSV_TEXT.replace(",eu-west-1,web-1-snap,", ",eu-west-1;eu-west-2;ap-south-1,web-1-snap,")
    loaded = load_manifest(write(tmp_path, "jobs.csv", text))
    assert loaded.total == 5
    assert dict(loaded.per_region) == {"ap-south-1": 1, "eu-west-1": 2, "eu-west-2": 2}
    assert len(list(loaded.jobs())) == loaded.total


def test_a_fanned_out_target_may_not_repeat_another_rows(tmp_path: Path) -> None:
    """A fan-out row that reaches a target another row already names is refused at its line."""
    fan = ROW.replace("eu-west-1", "ap-south-1;eu-west-1")
    text = f"{HEADER}\n{ROW}\n{fan}\n{ROW.replace('eu-west-1', 'eu-west-2;ap-south-1')}\n"
    path = write(tmp_path, "m.csv", text)
    assert problems_of(path) == [
        f"{path}:3: target_snapshot_name: eu-west-1/web-1-copy is already the target of line 2; "
        "targets must be unique",
        f"{path}:4: target_snapshot_name: ap-south-1/web-1-copy is already the target of line 3; "
        "targets must be unique",
    ]


def test_a_region_listed_twice_in_a_row_is_a_problem(tmp_path: Path) -> None:
    """The same target region twice in one row is reported, not copied twice."""
    text = f"{HEADER}\n{ROW.replace('eu-west-1', 'eu-west-1;ap-south-1; eu-west-1')}\n"
    path = write(tmp_path, "m.csv", text)
    assert problems_of(path) == [
        f'{path}:2: target_region: "eu-west-1" is listed twice; name each region once'
    ]


def test_an_empty_entry_between_semicolons_is_a_problem(tmp_path: Path) -> None:
    """``eu-west-1;;`` is reported once, showing the cell and how to separate regions."""
    path = write(tmp_path, "m.csv", f"{HEADER}\n{ROW.replace('eu-west-1', 'eu-west-1;;')}\n")
    assert problems_of(path) == [
        f'{path}:2: target_region: "eu-west-1;;" has an empty entry; separate regions with '
        "single semicolons, like eu-west-1;ap-south-1"
    ]
    assert problems_of(write(tmp_path, "m.csv", CSV_TEXT), target_region=";") == [
        f'{path}: target_region: the default ";" has an empty entry; separate regions with '
        "single semicolons, like eu-west-1;ap-south-1"
    ]


def test_a_bad_region_inside_a_list_names_its_line_and_field(tmp_path: Path) -> None:
    """Each bad region in a JSON list is its own problem at the job's line, with a suggestion."""
    row = {**as_json(MANUAL), "targetRegion": ["eu-west-1", "eu-wset-2", "mars-1"]}
    path = write(tmp_path, "m.json", "[\n" + json.dumps(row) + "\n]")
    assert problems_of(path) == [
        f'{path}:2: target_region: "eu-wset-2" is not a Lightsail region (did you mean '
        "eu-west-2?); valid ones include us-east-1, us-east-2, us-west-1; "
        "`aws lightsail get-regions` lists them all",
        f'{path}:2: target_region: "mars-1" is not a Lightsail region; valid ones include '
        "us-east-1, us-east-2, us-west-1; `aws lightsail get-regions` lists them all",
    ]


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        ([], "must not be an empty list: give one region or more, or leave it out"),
        (["eu-west-1", 7], "entry 2 must be a string, not a number"),
        (["eu-west-1", None], "entry 2 must be a string, not null"),
        ([" "], "entry 1 is empty; give a region or remove it"),
        (5, "must be a string or a list of strings, not a number"),
        (["eu-west-1"] * 50, "has 50 entries, but Lightsail has"),
    ],
    ids=["empty", "number", "null", "blank", "not-a-list", "too-many"],
)
def test_a_target_region_list_holds_region_names_only(
    tmp_path: Path, regions: object, message: str
) -> None:
    """A JSON targetRegion that is an empty list, or holds a non-string, is one problem."""
    row = {**as_json(MANUAL), "targetRegion": regions}
    path = write(tmp_path, "m.jsonl", "\n" + json.dumps(row) + "\n")
    found = problems_of(path)
    assert len(found) == 1
    assert found[0].startswith(f"{path}:2: target_region: {message}"), found


# -- properties -------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        b"\x00",
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        b"\xc3",
        b"\r\n",
        b"\n",
        b"\r",
        b'"',
        b",",
        b";",
        b"\t",
        b"[",
        b"]",
        b"{",
        b"}",
        b":",
        b'"jobs"',
        b'"defaults"',
        b"null",
        b"true",
        b"1",
        HEADER.encode(),
        HEADER.title().replace(",", ";").replace("_", " ").encode(),
        ROW.encode(),
        json.dumps(as_json(MANUAL)).encode(),
        b'"sourceRegion"',
        b"x" * 1500,
        b"y" * (1024 * 1024 + 10),
    ]
)
JUNK = st.lists(st.one_of(st.binary(max_size=12), FRAGMENTS), max_size=14).map(b"".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=JUNK, suffix=st.sampled_from([".csv", ".json", ".jsonl", ".txt"]))
def test_any_bytes_give_a_manifest_or_a_manifest_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes, suffix: str
) -> None:
    """Whatever the file holds, the user gets jobs or a list of problems, never a crash."""
    path = tmp_path_factory.mktemp("junk") / f"m{suffix}"
    path.write_bytes(content)
    try:
        loaded = load_manifest(path)
    except ManifestError as exc:
        error = exc
    else:
        assert len(list(loaded.jobs())) == loaded.total
        return
    assert error.problems
    str(error).encode()  # printable: no lone surrogates reach the terminal


NAMES = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,30}[A-Za-z0-9_]", fullmatch=True)
REGIONS = st.sampled_from(lightsail_regions())


@st.composite
def copy_jobs(draw: st.DrawFn) -> CopyJob:
    """Any valid job: a manual copy, or an automatic one by date or the latest."""
    source = draw(NAMES)
    kind = draw(st.sampled_from(["manual", "dated", "latest"]))
    return CopyJob(
        line=0,
        source_region=draw(REGIONS),
        target_region=draw(REGIONS),
        target_snapshot_name=draw(NAMES),
        source_snapshot_name=source if kind == "manual" else None,
        source_resource_name=None if kind == "manual" else source,
        restore_date=draw(st.dates()).isoformat() if kind == "dated" else None,
        use_latest=kind == "latest",
    )


@st.composite
def fanned_rows(draw: st.DrawFn) -> tuple[CopyJob, list[str], bool]:
    """A valid row: a job, the target regions it fans out to, and whether JSON lists them."""
    regions = draw(st.lists(REGIONS, min_size=1, max_size=4, unique=True))
    return draw(copy_jobs()), regions, draw(st.booleans())


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        fanned_rows(), min_size=1, max_size=20, unique_by=lambda row: row[0].target_snapshot_name
    )
)
def test_valid_jobs_round_trip_through_csv_and_json_lines(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[CopyJob, list[str], bool]]
) -> None:
    """Rows written as CSV (to_row) or JSON Lines (camelCase) read back as a job per region."""
    folder = tmp_path_factory.mktemp("round")
    with (folder / "m.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0][0].to_row()))
        writer.writeheader()
        writer.writerows({**job.to_row(), "target_region": ";".join(r)} for job, r, _ in rows)
    (folder / "m.jsonl").write_text(
        "".join(
            json.dumps({**as_json(job), "targetRegion": r if listed else ";".join(r)}) + "\n"
            for job, r, listed in rows
        )
    )
    jobs = [fanned(job, *regions, line=n) for n, (job, regions, _) in enumerate(rows, start=1)]
    expected = [job for row in jobs for job in row]
    assert list(load_manifest(folder / "m.csv").jobs()) == [
        dataclasses.replace(job, line=job.line + 1) for job in expected
    ]
    assert list(load_manifest(folder / "m.jsonl").jobs()) == expected


def test_a_target_that_is_its_own_source_is_refused(tmp_path: Path) -> None:
    """A manual snapshot "copied" onto itself (same region, same name) is refused with its
    line and field, for a manifest and for a job built in code."""
    path = tmp_path / "self.csv"
    path.write_text(HEADER + "\nus-east-1,us-east-1,snap-a,,,,snap-a\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert "self.csv:2: target_snapshot_name: the source itself in us-east-1" in str(info.value)
    with pytest.raises(ValueError, match="the target is the source itself"):
        CopyJob(
            line=2,
            source_region="us-east-1",
            target_region="us-east-1",
            source_snapshot_name="snap-a",
            target_snapshot_name="snap-a",
        )


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_number_too_long_for_python_is_a_problem_not_a_crash(tmp_path: Path, fmt: str) -> None:
    """A field holding a number of 5,000 digits (Python refuses to read such ints) is
    reported at its line and field like any number where text is due."""
    job = {
        "source_region": "us-east-1",
        "target_region": "eu-west-1",
        "source_snapshot_name": "snap-a",
        "target_snapshot_name": "__BIG__",
    }
    text = json.dumps(job if fmt == "jsonl" else [job]).replace('"__BIG__"', "1" * 5000)
    path = tmp_path / f"big.{fmt}"
    path.write_text(text + "\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert "target_snapshot_name: must be a string, not a number" in str(info.value)


def test_a_manifest_changed_after_its_check_is_not_read_on(tmp_path: Path) -> None:
    """Rows appended (or the file rewritten) after the manifest was checked are never read:
    its jobs are the rows checked."""
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "\nus-east-1,eu-west-1,snap-a,,,,copy-a\n")
    manifest = load_manifest(path)
    with path.open("a") as handle:
        handle.write("us-east-1,eu-west-1,snap-b,,,,copy-b\n")
    assert [job.target_snapshot_name for job in manifest.jobs()] == ["copy-a"]
    path.write_text(HEADER + "\nus-east-1,eu-west-1,snap-c,,,,copy-c\n")  # same size or not
    assert [job.target_snapshot_name for job in manifest.jobs()] == ["copy-a"]


# -- accounts -----------------------------------------------------------------------------------

WEB, SHOP = "222222222222", "333333333333"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "m.csv",
            f"{HEADER},account\n"
            f"us-east-1,eu-west-1,web-1-snap,,,,web-1-copy,{WEB}\n"
            f"us-east-1,eu-west-1,web-1-snap,,,,web-1-copy,{SHOP}\n"
            "us-east-1,eu-west-1,web-1-snap,,,,web-1-copy,\n",
        ),
        (
            "m.json",
            json.dumps(
                [
                    {**as_json(MANUAL), "account": WEB},
                    {**as_json(MANUAL), "account": int(SHOP)},  # a number that kept its digits
                    as_json(MANUAL),
                ]
            ),
        ),
        (
            "m.jsonl",
            "\n".join(
                json.dumps(row)
                for row in (
                    {**as_json(MANUAL), "account": WEB},
                    {**as_json(MANUAL), "account": SHOP},
                    as_json(MANUAL),
                )
            ),
        ),
    ],
)
def test_rows_may_name_their_account(tmp_path: Path, name: str, content: str) -> None:
    """An account column or key puts the row's copy in that account; the same target name
    in another account (or the base credentials', with no account) is no duplicate."""
    jobs = list(load_manifest(write(tmp_path, name, content)).jobs())
    assert [job.account for job in jobs] == [WEB, SHOP, ""]
    assert [job.target for job in jobs] == [
        f"{WEB}/eu-west-1/web-1-copy",
        f"{SHOP}/eu-west-1/web-1-copy",
        "eu-west-1/web-1-copy",
    ]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("22222222222", "is not an account id: 12 digits, as AWS writes an account id (a "
         "spreadsheet may have dropped leading zeros: format the column as text)"),
        ("2222-2222-2222", "is not an account id: 12 digits, as AWS writes an account id"),
        ("client-a", "is not an account id: 12 digits, as AWS writes an account id"),
        ("\uff12" * 12, "is not an account id: 12 digits, as AWS writes an account id"),
    ],
)  # fmt: skip
def test_a_malformed_account_is_reported_at_its_line(
    tmp_path: Path, cell: str, message: str
) -> None:
    """A malformed account id is FILE:LINE: account: ..., with the other rows' problems."""
    text = f"{HEADER},account\nus-east-1,eu-west-1,web-1-snap,,,,web-1-copy,{cell}\n"
    path = write(tmp_path, "m.csv", text)
    assert problems_of(path) == [f"{path}:2: account: {json.dumps(cell)} {message}"]


def test_a_duplicate_within_one_account_is_still_a_duplicate(tmp_path: Path) -> None:
    """The same target name twice in one account and region is refused, naming both lines."""
    row = f"us-east-1,eu-west-1,web-1-snap,,,,web-1-copy,{WEB}"
    path = write(tmp_path, "m.csv", f"{HEADER},account\n{row}\n{row}\n")
    assert problems_of(path) == [
        f"{path}:3: target_snapshot_name: {WEB}/eu-west-1/web-1-copy is already the target "
        "of line 2; targets must be unique"
    ]
