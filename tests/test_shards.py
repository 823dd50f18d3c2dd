"""Shards: the lane -> shard assignment (balanced, stable, a function of the manifest's
content), --shard I/N and --shard auto, validate --shards, and a shard's report folder."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchcopy.errors import SettingsError
from batchcopy.jobs import CopyJob
from batchcopy.manifest import load_manifest
from batchcopy.shards import Shard, assign, lanes_of, select, select_jobs
from tests.helpers import HEADER, EmulatorProcess, run_cli, write_manifest

ACCOUNTS = [f"{n}" * 12 for n in range(2, 10)]
REGIONS = ["eu-west-1", "ap-south-1", "us-west-2", "eu-central-1", "ca-central-1"]


def jobs_of(lanes: dict[tuple[str, str], int]) -> list[CopyJob]:
    """Jobs giving each (account, region) lane its count, one manifest line each."""
    jobs = []
    for (account, region), count in lanes.items():
        for i in range(count):
            jobs.append(
                CopyJob(
                    line=len(jobs) + 2,
                    account=account,
                    source_region="us-east-1",
                    target_region=region,
                    source_snapshot_name=f"web-{i}",
                    target_snapshot_name=f"web-{i}-dr",
                )
            )
    return jobs


lane_counts = st.dictionaries(
    st.tuples(st.sampled_from(["", *ACCOUNTS]), st.sampled_from(REGIONS)),
    st.integers(min_value=1, max_value=60),
    min_size=1,
    max_size=40,
)


@st.composite
def many_lanes(draw: st.DrawFn) -> tuple[dict[str, int], int]:
    """N shards and at least 50 lanes per shard of 10 to 50 jobs: no lane holds more than
    a tenth of a shard's average."""
    count = draw(st.integers(min_value=1, max_value=16))
    sizes = draw(
        st.lists(st.integers(min_value=10, max_value=50), min_size=50 * count, max_size=60 * count)
    )
    names = draw(st.permutations([f"{ACCOUNTS[i % 8]}/{i}" for i in range(len(sizes))]))
    return dict(zip(names, sizes, strict=True)), count


@settings(max_examples=40, deadline=None)
@given(case=many_lanes())
def test_no_shard_holds_more_than_a_tenth_above_the_average(
    case: tuple[dict[str, int], int],
) -> None:
    """With many lanes, no shard holds more than 10% above the average; every lane is in
    exactly one shard, every job counted once."""
    per_lane, count = case
    made = assign(per_lane, count)
    assert set(made.shard_of) == set(per_lane)
    loads = [made.jobs_in(i) for i in range(count)]
    assert sum(loads) == sum(per_lane.values())
    average = sum(loads) / count
    assert max(per_lane.values()) <= average / 10  # what "many lanes" means here
    assert max(loads) <= 1.1 * average


@settings(max_examples=100, deadline=None)
@given(
    per_lane=st.dictionaries(
        st.text("abcdefgh/-0123456789", min_size=1, max_size=20),
        st.integers(min_value=1, max_value=1000),
        min_size=1,
        max_size=100,
    ),
    count=st.integers(min_value=1, max_value=16),
)
def test_any_lanes_leave_no_shard_a_lane_above_the_average(
    per_lane: dict[str, int], count: int
) -> None:
    """Whatever the lanes, the fullest shard holds at most one lane's jobs more than the
    average (the most that splitting whole lanes can promise)."""
    made = assign(per_lane, count)
    loads = [made.jobs_in(i) for i in range(count)]
    assert max(loads) <= sum(loads) / count + max(per_lane.values())


@settings(max_examples=100, deadline=None)
@given(lanes=lane_counts, count=st.integers(min_value=1, max_value=12), seed=st.integers())
def test_the_assignment_is_the_same_whatever_the_order_of_rows(
    lanes: dict[tuple[str, str], int], count: int, seed: int
) -> None:
    """The same jobs in any order make the same lane -> shard map and digest: every
    machine of a fleet reading the manifest (or a copy with its rows reordered) agrees."""
    jobs = jobs_of(lanes)
    shuffled = jobs[:]
    random.Random(seed).shuffle(shuffled)
    first, again = assign(lanes_of(jobs), count), assign(lanes_of(shuffled), count)
    assert first == again
    assert first.digest == again.digest
    # Each shard's jobs are those of its lanes, and the shards together are every job.
    parts = [select_jobs(shuffled, Shard(index=i, count=count))[0] for i in range(count)]
    assert sorted(j.line for part in parts for j in part) == sorted(j.line for j in jobs)
    for i, part in enumerate(parts):
        assert {j.lane for j in part} == set(first.lanes_in(i))


def test_the_digest_names_the_shard_count_and_the_map() -> None:
    """Another shard count, or lanes that split otherwise, give another digest."""
    lanes = {"eu-west-1": 5, "ap-south-1": 5, "us-west-2": 3}
    assert assign(lanes, 2).digest != assign(lanes, 3).digest
    assert assign(lanes, 2).digest != assign({**lanes, "us-west-2": 30}, 2).digest
    assert assign(lanes, 2).digest == assign(dict(reversed(lanes.items())), 2).digest


def test_fewer_lanes_than_shards_leaves_shards_empty() -> None:
    """Two lanes over five shards: two shards hold one lane each, three hold nothing."""
    made = assign({"eu-west-1": 3, "ap-south-1": 1}, 5)
    assert [made.jobs_in(i) for i in range(5)] == [3, 1, 0, 0, 0]
    assert made.lanes_in(4) == []


def test_a_manifest_shard_holds_its_lanes_rows_with_the_whole_files_sha256(
    tmp_path: Path,
) -> None:
    """select() gives the shard's rows only (a row fanning out to two regions may give
    one of its jobs to each shard), its counts, and the whole manifest's sha256."""
    rows = [
        "us-east-1,eu-west-1;ap-south-1,web-1,,,,web-1-dr",
        "us-east-1,us-west-2,web-2,,,,web-2-dr",
        "us-east-1,eu-west-1,web-3,,,,web-3-dr",
    ]
    loaded = load_manifest(write_manifest(tmp_path / "m.csv", rows))
    seen = []
    for index in range(3):
        part, made = select(loaded, Shard(index=index, count=3))
        jobs = list(part.jobs())
        assert part.total == len(jobs) == made.jobs_in(index)
        assert part.sha256 == loaded.sha256
        assert sum(part.per_region.values()) == part.total
        seen += [(j.line, j.target_region) for j in jobs]
    assert sorted(seen) == sorted((j.line, j.target_region) for j in loaded.jobs())


def test_reordered_rows_of_a_file_keep_each_lane_on_its_shard(tmp_path: Path) -> None:
    """A manifest file with its rows in another order (a different sha256) still sends
    each lane to the same shard."""
    rows = [f"us-east-1,{REGIONS[i % 5]},web-{i},,,,web-{i}-dr" for i in range(40)]
    one = select(load_manifest(write_manifest(tmp_path / "a.csv", rows)), Shard.parse("1/3"))[1]
    other = load_manifest(write_manifest(tmp_path / "b.csv", rows[::-1]))
    assert select(other, Shard.parse("1/3"))[1].shard_of == one.shard_of


@pytest.mark.parametrize("text", ["1/3", " 0/1 ", "7/8"])
def test_shard_parses_i_of_n(text: str) -> None:
    """--shard I/N names shard I, counted from 0, of N."""
    shard = Shard.parse(text)
    assert str(shard) == text.strip()
    assert shard.tag == f"batchcopy-shard/{shard.index}-{shard.count}"


@pytest.mark.parametrize("text", ["3/3", "-1/3", "a/3", "1", "0/0", "1/3/4", "\uff11/3", ""])
def test_a_shard_that_is_not_i_of_n_is_refused(text: str) -> None:
    """An index outside 0..N-1, a count below 1 or anything not I/N is refused."""
    with pytest.raises(SettingsError):
        Shard.parse(text)


def test_shard_from_a_kubernetes_indexed_job() -> None:
    """JOB_COMPLETION_INDEX gives the index, --shards the count; said as read."""
    shard = Shard.from_environment(8, {"JOB_COMPLETION_INDEX": "2"})
    assert (shard.index, shard.count) == (2, 8)
    assert shard.source == "JOB_COMPLETION_INDEX=2, --shards 8"
    with pytest.raises(SettingsError, match="--shards N"):
        Shard.from_environment(None, {"JOB_COMPLETION_INDEX": "2"})
    with pytest.raises(SettingsError, match="0 to 7"):
        Shard.from_environment(8, {"JOB_COMPLETION_INDEX": "8"})


def test_shard_from_an_aws_batch_array_job() -> None:
    """AWS_BATCH_JOB_ARRAY_INDEX and AWS_BATCH_JOB_ARRAY_SIZE give index and count."""
    env = {"AWS_BATCH_JOB_ARRAY_INDEX": "4", "AWS_BATCH_JOB_ARRAY_SIZE": "5"}
    shard = Shard.from_environment(None, env)
    assert (shard.index, shard.count) == (4, 5)
    assert "AWS_BATCH_JOB_ARRAY_SIZE=5" in shard.source
    with pytest.raises(SettingsError, match="disagrees"):
        Shard.from_environment(3, env)
    with pytest.raises(SettingsError, match="not a shard index"):
        Shard.from_environment(None, {"AWS_BATCH_JOB_ARRAY_INDEX": "4"})
    with pytest.raises(SettingsError, match="neither is set"):
        Shard.from_environment(None, {})


# -- the command line -----------------------------------------------------------------------


def demo_manifest(path: Path) -> Path:
    """Demo-seed copies into three regions; the first row fans out to two."""
    rows = [
        "us-east-1,eu-west-1;ap-south-1,nyc-api-1-2026-11-20,,,,api-1-copy",
        "us-east-1,ap-south-1,nyc-web-data-2026-11-20,,,,web-data-mumbai",
        "us-east-1,us-west-2,,nyc-web-1,2026-11-19,,web-1-auto",
        "us-east-1,eu-west-1,,nyc-shop-1,2026-11-18,,shop-1-auto",
    ]
    return write_manifest(path, rows, HEADER)


def test_validate_shards_prints_jobs_and_lanes_per_shard(tmp_path: Path) -> None:
    """validate --shards N shows each shard's jobs and lanes (no request: no endpoint)."""
    manifest = demo_manifest(tmp_path / "m.csv")
    shown = run_cli("validate", str(manifest), "--shards", "4", "--json")
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert [p["jobs"] for p in body["per_shard"]] == [2, 2, 1, 0]
    assert sorted(lane for p in body["per_shard"] for lane in p["lanes"]) == [
        "ap-south-1",
        "eu-west-1",
        "us-west-2",
    ]
    table = run_cli("validate", str(manifest), "--shards", "4")
    assert "5 jobs in 3 lanes over 4 shards" in table.stdout
    assert "nothing to do" in table.stdout  # shard 3/4
    bad = run_cli("validate", str(manifest), "--shards", "0")
    assert bad.returncode == 2
    assert "--shards 0" in bad.stderr


def test_validate_shards_of_a_fleet_names_a_few_lanes_per_shard(tmp_path: Path) -> None:
    """validate --shards over hundreds of lanes keeps each shard's row short: the first
    lanes and how many more (the JSON lists them all)."""
    rows = "\n".join(
        f"{200_000_000_000 + n:012d},us-east-1,{region},web-1,web-1-dr"
        for n in range(60)
        for region in ("eu-west-1", "eu-central-1")
    )
    manifest = tmp_path / "fleet.csv"
    manifest.write_text(
        "account,source_region,target_region,source_snapshot_name,target_snapshot_name\n"
        + rows
        + "\n"
    )
    table = run_cli("validate", str(manifest), "--shards", "3")
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("... and 34 more (--json lists them)") == 3  # 40 lanes each
    listed = json.loads(run_cli("validate", str(manifest), "--shards", "3", "--json").stdout)
    assert sum(len(p["lanes"]) for p in listed["per_shard"]) == 120


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["--shard", "auto"], {}, "neither is set"),
        (["--shard", "auto"], {"JOB_COMPLETION_INDEX": "1"}, "--shards N"),
        (["--shard", "auto", "--shards", "2"], {"JOB_COMPLETION_INDEX": "x"}, "not a shard"),
        (["--shard", "2/2"], {}, "0 to 1"),
        (["--shard", "1/2", "--shards", "2"], {}, "--shards goes with --shard auto"),
        (["--shards", "2"], {}, "--shards needs --shard auto"),
    ],
)
def test_a_bad_shard_exits_2_before_any_request(
    live: EmulatorProcess, tmp_path: Path, args: list[str], env: dict[str, str], said: str
) -> None:
    """A shard that cannot be told from the options and environment: exit 2, one line
    saying why, and the emulator sees no request."""
    manifest = demo_manifest(tmp_path / "m.csv")
    result = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(tmp_path / "r"),
        *args, env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert said in result.stderr
    assert "Traceback" not in result.stderr
    assert live.stats()["requests_total"] == 0
    assert not (tmp_path / "r").exists()


def test_shard_auto_says_what_it_read_and_records_the_shard(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """--shard auto in an Indexed Job says on stderr what it read (with --quiet too: a pod's
    log must name its shard); the summary and the
    journal's first record name the shard and the assignment; requests carry the shard."""
    manifest = demo_manifest(tmp_path / "m.csv")
    report = tmp_path / "r"
    result = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(report),
        "--shard", "auto", "--shards", "4", "--quiet", env={"JOB_COMPLETION_INDEX": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "shard 1/4 from JOB_COMPLETION_INDEX=1, --shards 4" in result.stderr  # --quiet too
    summary = json.loads((report / "summary.json").read_text())
    first = json.loads((report / "journal.jsonl").read_text().splitlines()[0])
    assert summary["shard"] == first["shard"] == "1/4"
    assert summary["assignment_digest"] == first["assignment_digest"]
    assert summary["manifest_sha256"] == first["manifest_sha256"]
    assert summary["total"] == 2
    lanes = select(load_manifest(manifest), Shard.parse("1/4"))[1].lanes_in(1)
    clients = live.stats()["clients"]
    assert {lane: clients[lane] for lane in lanes} == {
        lane: ["batchcopy-shard/1-4"] for lane in lanes
    }


def test_a_shard_with_no_lanes_says_so_and_writes_an_empty_report(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """The shard left without lanes says so, exits 0, sends nothing, and writes a valid
    report of no rows."""
    manifest = demo_manifest(tmp_path / "m.csv")
    report = tmp_path / "r"
    result = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(report),
        "--shard", "3/4", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "shard 3/4 from --shard 3/4 has no lanes" in result.stderr
    summary = json.loads((report / "summary.json").read_text())
    assert (summary["total"], summary["exit_code"], summary["shard"]) == (0, 0, "3/4")
    assert (report / "results.jsonl").read_text() == ""
    assert live.stats()["requests_total"] == 0


def test_a_shards_folder_is_refused_to_another_shard_or_shard_count(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """--resume of a shard's folder with another shard, another count or no --shard, or
    a new run of another shard into it: exit 2, naming the shard the folder holds."""
    manifest = demo_manifest(tmp_path / "m.csv")
    report = tmp_path / "r"
    common = ["--endpoint-url", live.url, "--quiet"]
    first = run_cli("run", str(manifest), "--report-dir", str(report), "--shard", "0/2", *common)
    assert first.returncode == 0, first.stderr
    before = live.stats()["requests_total"]
    for args, said in [
        (
            ["--resume", str(report), "--shard", "1/2"],
            "journal of shard 0/2, this run is shard 1/2",
        ),
        (
            ["--resume", str(report), "--shard", "0/3"],
            "journal of shard 0/2, this run is shard 0/3",
        ),
        (["--resume", str(report)], "this run is a whole run"),
        (["--report-dir", str(report), "--shard", "1/2"], "report of shard 0/2"),
    ]:
        refused = run_cli("run", str(manifest), *args, *common)
        assert refused.returncode == 2, (args, refused.stderr)
        assert said in refused.stderr, (args, refused.stderr)
    assert live.stats()["requests_total"] == before
    again = run_cli("run", str(manifest), "--resume", str(report), "--shard", "0/2", *common)
    assert again.returncode == 0, again.stderr


def test_plan_of_a_shard_checks_only_its_lanes(live: EmulatorProcess, tmp_path: Path) -> None:
    """plan --shard I/N checks the shard's jobs only, with the shard's tag on its reads."""
    manifest = demo_manifest(tmp_path / "m.csv")
    result = run_cli("plan", str(manifest), "--endpoint-url", live.url, "--shard", "0/4", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["total"] == 2
    assert plan["per_region"] == {"ap-south-1": 2}
    assert live.stats()["clients"]["ap-south-1"] == ["batchcopy-shard/0-4"]
    assert "eu-west-1" not in live.stats()["clients"]


async def test_make_plan_takes_a_shard(tmp_path: Path) -> None:
    """The API's make_plan(shard=) plans that shard's jobs, from a manifest or a list."""
    from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
    from batchcopy.plan import make_plan
    from tests.helpers import settings_for

    loaded = load_manifest(demo_manifest(tmp_path / "m.csv"))
    async with running_emulator(Emulator(seed=demo_seed(), faults=FaultConfig())) as url:
        shard = Shard.parse("1/4")
        whole = await make_plan(loaded, settings_for(url), shard=shard)
        listed = await make_plan(list(loaded.jobs()), settings_for(url), shard=shard)
    assert whole.total == listed.total == 2
    assert dict(whole.per_region) == dict(listed.per_region) == {"eu-west-1": 2}


async def test_stream_copies_of_a_shard_runs_only_its_lanes() -> None:
    """stream_copies(shard=) runs the shard's lanes only, its requests tagged with it."""
    from batchcopy import stream_copies
    from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
    from tests.helpers import mixed_jobs, settings_for

    jobs = mixed_jobs(12)
    shard = Shard.parse("2/3")
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig())
    async with (
        running_emulator(emulator) as url,
        stream_copies(jobs, settings_for(url), shard=shard) as results,
    ):
        done = [result async for result in results]
    lanes = set(assign(lanes_of(jobs), 3).lanes_in(2))
    assert lanes
    assert {r.job.target for r in done} == {j.target for j in jobs if j.lane in lanes}
    assert {lane: emulator.stats.clients[lane] for lane in lanes} == {
        lane: {"batchcopy-shard/2-3"} for lane in lanes
    }


async def test_emulator_stats_name_the_clients_of_each_lane() -> None:
    """The emulator's stats say which clients called each region: a shard by its tag,
    any other client by the first word of its User-Agent."""
    from batchcopy import copy_snapshots
    from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
    from tests.helpers import manual, settings_for

    emulator = Emulator(seed=demo_seed(), faults=FaultConfig())
    async with running_emulator(emulator) as url:
        await copy_snapshots([manual(2, "eu-west-1", "copy-a")], settings_for(url))
        await copy_snapshots(
            [manual(2, "ap-south-1", "copy-b")], settings_for(url), shard=Shard.parse("0/1")
        )
    clients = emulator.stats.to_json()["clients"]
    assert clients["ap-south-1"] == ["batchcopy-shard/0-1"]
    assert len(clients["eu-west-1"]) == 1
    assert clients["eu-west-1"][0].startswith(("Botocore/", "aiobotocore/"))


def test_a_prune_shard_with_a_manifest_takes_the_lanes_its_copy_shard_has() -> None:
    """prune --manifest --shard I/N lists the lanes that run --shard I/N copies into (the
    manifest's split); without a manifest, every (account, region) once over the shards."""
    from batchcopy.prune import Scope

    jobs = jobs_of({(a, r): 1 + (i % 7) for i, (a, r) in enumerate(
        (a, r) for a in ACCOUNTS[:4] for r in REGIONS
    )})  # fmt: skip
    made = assign(lanes_of(jobs), 3)
    accounts = [j.account for j in jobs]
    for index in range(3):
        scope = dataclasses.replace(Scope.of_jobs(jobs), shard=f"{index}/3")
        lanes = scope.lanes(accounts, scope.regions)
        assert sorted(f"{a}/{r}" for a, r in lanes) == made.lanes_in(index)
        again = Scope.from_json(json.loads(json.dumps(scope.to_json())))
        assert again.lanes(accounts, scope.regions) == lanes  # a resume keeps the shard
    every = [Scope(shard=f"{i}/3").lanes(["", ACCOUNTS[0]], REGIONS) for i in range(3)]
    assert sorted(pair for part in every for pair in part) == sorted(
        (a, r) for a in ("", ACCOUNTS[0]) for r in REGIONS
    )
    assert [len(part) for part in every] == [4, 3, 3]
