"""Manifests: the snapshot copies to make, read from CSV, JSON or JSON Lines.

A manifest holds one row per CSV row (after a header row), per object in a JSON array, or per
line of JSON Lines; a row makes one job per target region. A JSON document may also be
``{"defaults": {...}, "jobs": [...]}``, where defaults fill the fields a row leaves out. Fields
are spelled in snake_case or camelCase; an empty value or null is absent. As spreadsheets save
them, a CSV header may also use any case, spaces or hyphens (``Source Region``) and separate
its columns with ";" or tabs instead of commas: the header line alone decides, and in a file
separated by ";" a cell listing several target regions is quoted (``"eu-west-1;ap-south-1"``).

  field (or its camelCase form)         meaning
  source_region                         where the source lives (may come from a default)
  target_region                         where copies are made (may come from a default):
                                        one region, or several separated by ";"
                                        (eu-west-1;ap-south-1) or, in JSON, as a list;
                                        each is its own job, all on the row's line
  source_snapshot_name                  a manual snapshot to copy, or
  source_resource_name                  the instance or disk whose automatic snapshot to copy
  restore_date                          automatic only: that day's snapshot, YYYY-MM-DD, or
  use_latest_restorable_auto_snapshot   automatic only: true for the latest one
  target_snapshot_name                  the copy's name: unique per target region, the job's key
                                        (so a row fanning out makes one copy in each region)

Names follow :data:`batchcopy.facts.NAME_RULE`, regions are those botocore lists for
Lightsail (a row names each target region once), booleans are true/false, yes/no or 1/0. The
extension (``.csv``, ``.json``, ``.jsonl``, ``.ndjson``) names the format; otherwise (stdin
too) the first bytes decide.

Memory stays flat however long a manifest is: CSV and JSON Lines are streamed a line at a time,
a JSON document (smaller, by :data:`MAX_JSON_BYTES`) is decoded one row at a time, a row
makes at most one job per Lightsail region, and finding duplicates keeps only an 8-byte digest
per target (per job, so a fanned-out row costs one per region). Checking and
:meth:`Manifest.jobs` share one parser, so each rule is written once.

The package, one concern a module: :mod:`~batchcopy.manifest.fields` (the rules),
:mod:`~batchcopy.manifest.files` (spooling, format, size limits, lines),
:mod:`~batchcopy.manifest.csvfile` and :mod:`~batchcopy.manifest.jsonfile` (the readers),
:mod:`~batchcopy.manifest.tally` (problems, counts, duplicates) and
:mod:`~batchcopy.manifest.load` (:func:`load_manifest` and :class:`Manifest`).
"""

from batchcopy.manifest.fields import MAX_FIELD_CHARS
from batchcopy.manifest.files import MAX_FILE_BYTES, MAX_JSON_BYTES
from batchcopy.manifest.load import Manifest, load_manifest
from batchcopy.manifest.tally import MAX_PROBLEMS

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_FILE_BYTES",
    "MAX_JSON_BYTES",
    "MAX_PROBLEMS",
    "Manifest",
    "load_manifest",
]
