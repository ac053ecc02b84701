"""``monitor schedule``: the local scheduler process and EventBridge Scheduler (on moto)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.config import load_settings
from local_mlops.errors import LocalMlopsError
from local_mlops.monitoring import cloud_schedule, scheduled
from local_mlops.monitoring import schedule as sched
from local_mlops.stores.registry import LocalModelRegistry
from local_mlops.targets import Target

T0 = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
cli = CliRunner()


def test_schedules_are_kept_in_the_state_dir_and_fall_due_on_their_grid() -> None:
    settings = load_settings()
    entry = sched.add(settings, "ep", "1h", None, now=T0)
    assert (entry["window"], entry["next_run"]) == ("1h", "2026-12-01T21:00:00Z")
    sched.add(settings, "other", "30m", "2h", now=T0)
    schedules = sched.load(sched.folder(settings))
    assert sched.due(schedules, T0 + timedelta(minutes=31)) == ["other"]
    assert sorted(sched.due(schedules, T0 + timedelta(hours=1))) == ["ep", "other"]
    # Missed runs (the machine was off) are not made up: the next one is on the grid, ahead.
    assert sched.advance(schedules["ep"], T0 + timedelta(hours=5, minutes=10)) == (
        "2026-12-02T02:00:00Z"
    )
    assert sched.remove(settings, "ep") == ["ep"]
    with pytest.raises(LocalMlopsError, match="has no monitoring schedule"):
        sched.remove(settings, "ep")
    with pytest.raises(LocalMlopsError, match="--every '0m' is not a duration"):
        sched.add(settings, "ep", "0m", None)
    with pytest.raises(LocalMlopsError, match="--window 'hourly' is not a duration"):
        sched.add(settings, "ep", "1h", "hourly")


def wait_for(condition, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_scheduler_outlives_the_cli_stops_with_down_and_comes_back_with_up() -> None:
    settings = load_settings()
    result = cli.invoke(app, ["monitor", "schedule", "--every", "1h", "--endpoint", "ep", "--json"])
    assert result.exit_code == 0, result.output
    pid = json.loads(result.stdout)["scheduler_pid"]
    try:
        assert sched.scheduler_pid(settings) == pid  # the command is over; the process runs
        again = cli.invoke(app, ["monitor", "schedule", "--every", "2h", "--endpoint", "e2"])
        assert again.exit_code == 0 and sched.scheduler_pid(settings) == pid  # one scheduler
        listed = json.loads(cli.invoke(app, ["monitor", "schedules", "--json"]).stdout)
        assert {(r["endpoint"], r["every"]) for r in listed} == {("ep", "1h"), ("e2", "2h")}

        assert sched.stop_scheduler(settings)  # what `down` does
        assert sched.scheduler_pid(settings) is None
        assert sched.resume(settings) == 2  # what `up` does
        pid = sched.scheduler_pid(settings)
        assert pid is not None

        assert cli.invoke(app, ["monitor", "unschedule", "--endpoint", "ep"]).exit_code == 0
        assert sched.scheduler_pid(settings) == pid  # e2 is still scheduled
        assert cli.invoke(app, ["monitor", "unschedule", "--all"]).exit_code == 0
        wait_for(lambda: sched.scheduler_pid(settings) is None)
    finally:
        sched.stop_scheduler(settings)


def test_a_due_run_is_started_and_its_outcome_recorded(tmp_path: Path) -> None:
    """The scheduler's run of `monitor run`: here it fails (no such config), and says why."""
    outcome = scheduled.run_once(tmp_path, "ep", "1h", config=str(tmp_path / "missing.toml"))
    assert outcome["endpoint"] == "ep" and outcome["exit_code"] not in (0, None)
    assert outcome["error"]


def test_the_cloud_schedule_starts_the_monitoring_job_through_eventbridge_scheduler() -> None:
    settings = load_settings({"target": "cloud", "bucket": "mon-bucket", "region": "us-east-1"})
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        s3 = session.client("s3")
        s3.create_bucket(Bucket="mon-bucket")
        s3.put_object(Bucket="mon-bucket", Key="groundtruth/ep/2026/12/01/20/x.jsonl", Body=b"{}\n")
        registry = LocalModelRegistry(s3, "mon-bucket", "us-east-1")
        baselines = {
            "ModelDataQuality": {"Statistics": {"S3Uri": "s3://mon-bucket/base/statistics.json"}}
        }
        registry.register(
            settings.model_package_group,
            model_data_url="s3://mon-bucket/models/model.tar.gz",
            image="img",
            approval_status="Approved",
            drift_check_baselines=baselines,
        )
        target = Target(
            "cloud", SimpleNamespace(boto_session=session), "img:1", settings.role_arn, "mon-bucket",
            "us-east-1", "ml.m5.large", "ml.m5.large", registry=registry,
        )  # fmt: skip
        scheduler = session.client("scheduler")
        made = cloud_schedule.create(settings, target, "ep", "1h", "2h", client=scheduler)
        assert made["model_version"] == 1
        detail = scheduler.get_schedule(Name=made["schedule"])
        assert detail["ScheduleExpression"] == "rate(1 hour)"
        assert detail["Target"]["Arn"] == cloud_schedule.TARGET_ARN
        request = json.loads(detail["Target"]["Input"])
        arguments = request["AppSpecification"]["ContainerArguments"]
        assert arguments[:4] == ["--end", "<aws.scheduler.scheduled-time>", "--window-seconds",
                                 "7200"]  # fmt: skip
        inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
        assert inputs == {
            "baseline": "s3://mon-bucket/base/",
            "model": "s3://mon-bucket/models/model.tar.gz",
            "capture": "s3://mon-bucket/datacapture/ep/",
            "groundtruth": "s3://mon-bucket/groundtruth/ep/",
        }
        output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
        assert output == "s3://mon-bucket/monitoring/ep/<aws.scheduler.scheduled-time>"
        assert (
            len(request["ProcessingJobName"].replace("<aws.scheduler.execution-id>", "x" * 36))
            <= 63
        )

        cloud_schedule.create(settings, target, "ep", "30m", None, client=scheduler)  # replaces
        rows = cloud_schedule.list_schedules(settings, scheduler)
        assert [(r["endpoint"], r["every"]) for r in rows] == [("ep", "rate(30 minutes)")]
        assert cloud_schedule.delete(settings, "ep", client=scheduler) == ["ep"]
        assert cloud_schedule.list_schedules(settings, scheduler) == []
        with pytest.raises(LocalMlopsError, match="no monitoring schedule"):
            cloud_schedule.delete(settings, "ep", client=scheduler)


def test_the_monitor_job_takes_a_window_that_ends_at_the_scheduled_time() -> None:
    from mlops_container import monitor

    args = monitor.build_parser().parse_args(
        ["--end", "2026-12-01T21:00:00Z", "--window-seconds", "3600"]
    )
    start, end = monitor.window_bounds(args)
    assert (start, end) == (T0, T0 + timedelta(hours=1))
