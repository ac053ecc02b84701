"""What the project has in the account, found by its tags, and what that costs now.

    SageMaker       endpoints (with their variants' instance types and counts), endpoint configs,
                    models, pipelines and their running executions, running jobs, model package
                    groups: List* then ListTags, keeping those tagged local-mlops:project
    Scheduler       schedules in the project's (tagged) schedule groups, and schedules in the
                    default group whose target runs as the project's scheduler role
    storage         every object version in the project's bucket, every image in its repositories
Costs come from the price table in ``prices.toml``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from local_mlops.account import aws, prices, tags
from local_mlops.config import Settings

JOB_LISTINGS = {
    # kind: (list call, summaries key, name key, arn key, describe call, resources path)
    "training-job": (
        "list_training_jobs",
        "TrainingJobSummaries",
        "TrainingJobName",
        "TrainingJobArn",
        "describe_training_job",
        ("ResourceConfig",),
    ),
    "processing-job": (
        "list_processing_jobs",
        "ProcessingJobSummaries",
        "ProcessingJobName",
        "ProcessingJobArn",
        "describe_processing_job",
        ("ProcessingResources", "ClusterConfig"),
    ),
    "transform-job": (
        "list_transform_jobs",
        "TransformJobSummaries",
        "TransformJobName",
        "TransformJobArn",
        "describe_transform_job",
        ("TransformResources",),
    ),
}


@dataclass
class Item:
    """One resource of the project's; ``hourly_usd`` is None when the table has no price."""

    kind: str
    name: str
    arn: str = ""
    status: str = ""
    instance_type: str = ""
    instance_count: int = 0
    hourly_usd: float | None = 0.0
    group: str = ""  # a schedule's group


@dataclass
class Storage:
    where: str
    bytes: int
    monthly_usd: float


@dataclass
class Inventory:
    region: str
    items: list[Item] = field(default_factory=list)
    storage: list[Storage] = field(default_factory=list)
    price_table: prices.PriceTable | None = None

    def of(self, kind: str) -> list[Item]:
        return [i for i in self.items if i.kind == kind]

    @property
    def hourly_usd(self) -> float:
        return sum(i.hourly_usd or 0.0 for i in self.items)

    @property
    def monthly_usd(self) -> float:
        running = sum(i.hourly_usd or 0.0 for i in self.items if i.kind == "endpoint")
        return running * prices.HOURS_PER_MONTH + sum(s.monthly_usd for s in self.storage)

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "resources": [asdict(i) for i in self.items],
            "storage": [asdict(s) for s in self.storage],
            "hourly_usd": round(self.hourly_usd, 4),
            "monthly_usd": round(self.monthly_usd, 2),
            "prices": self.price_table.describe() if self.price_table else None,
        }


def list_all(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    action = f"{client.meta.service_model.signing_name}:{action_name(operation)}"
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return aws.paginate(client, operation, key, **kwargs)
    except (BotoCoreError, ClientError) as exc:
        raise aws.translate(exc, "listing the project's resources", action) from exc


def action_name(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def _sagemaker_tags(sm: Any, arn: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        return tags.as_dict(aws.paginate(sm, "list_tags", "Tags", ResourceArn=arn))
    except ClientError:
        return {}  # gone between the listing and now


def _tagged(
    settings: Settings, sm: Any, summaries: list[dict[str, Any]], arn_key: str
) -> list[Any]:
    return [s for s in summaries if tags.is_project(settings, _sagemaker_tags(sm, s[arn_key]))]


def _endpoints(settings: Settings, sm: Any, table: prices.PriceTable) -> list[Item]:
    from botocore.exceptions import ClientError

    found = []
    for summary in _tagged(
        settings, sm, list_all(sm, "list_endpoints", "Endpoints"), "EndpointArn"
    ):
        name = summary["EndpointName"]
        item = Item("endpoint", name, summary["EndpointArn"], summary.get("EndpointStatus", ""))
        try:
            endpoint = sm.describe_endpoint(EndpointName=name)
            config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        except ClientError:
            found.append(item)  # being deleted; nothing to price
            continue
        counts = {
            v["VariantName"]: v.get("CurrentInstanceCount")
            for v in endpoint.get("ProductionVariants", [])
        }
        hourly: float | None = 0.0
        kinds = []
        for variant in config.get("ProductionVariants", []):
            if "InstanceType" not in variant:
                kinds.append("serverless")
                continue
            count = int(
                counts.get(variant["VariantName"]) or variant.get("InitialInstanceCount", 1)
            )
            price = table.hourly("hosting", variant["InstanceType"])
            hourly = None if price is None or hourly is None else hourly + price * count
            item.instance_count += count
            kinds.append(variant["InstanceType"])
        item.instance_type = ", ".join(kinds)
        item.hourly_usd = hourly
        found.append(item)
    return found


def _jobs(settings: Settings, sm: Any, table: prices.PriceTable) -> list[Item]:
    found = []
    for kind, (listing, key, name_key, arn_key, describe, path) in JOB_LISTINGS.items():
        running = list_all(sm, listing, key, StatusEquals="InProgress")
        for summary in _tagged(settings, sm, running, arn_key):
            detail = getattr(sm, describe)(**{name_key: summary[name_key]})
            for part in path:
                detail = detail.get(part, {})
            instance_type = str(detail.get("InstanceType", ""))
            count = int(detail.get("InstanceCount", 1))
            price = table.hourly("jobs", instance_type)
            found.append(
                Item(
                    kind,
                    summary[name_key],
                    summary[arn_key],
                    "InProgress",
                    instance_type,
                    count,
                    None if price is None else price * count,
                )
            )
    return found


def _sagemaker(settings: Settings, session: Any, table: prices.PriceTable) -> list[Item]:
    sm = session.client("sagemaker")
    items = _endpoints(settings, sm, table)
    listings = [
        (
            "endpoint-config",
            "list_endpoint_configs",
            "EndpointConfigs",
            "EndpointConfigName",
            "EndpointConfigArn",
        ),
        ("model", "list_models", "Models", "ModelName", "ModelArn"),
        ("pipeline", "list_pipelines", "PipelineSummaries", "PipelineName", "PipelineArn"),
        (
            "model-package-group",
            "list_model_package_groups",
            "ModelPackageGroupSummaryList",
            "ModelPackageGroupName",
            "ModelPackageGroupArn",
        ),
    ]
    for kind, listing, key, name_key, arn_key in listings:
        for summary in _tagged(settings, sm, list_all(sm, listing, key), arn_key):
            items.append(Item(kind, summary[name_key], summary[arn_key]))
    for pipeline in [i for i in items if i.kind == "pipeline"]:
        executions = list_all(
            sm, "list_pipeline_executions", "PipelineExecutionSummaries", PipelineName=pipeline.name
        )
        for execution in executions:
            if execution.get("PipelineExecutionStatus") in ("Executing", "Stopping"):
                arn = execution["PipelineExecutionArn"]
                items.append(
                    Item(
                        "execution",
                        arn.rsplit("/", 1)[-1],
                        arn,
                        execution["PipelineExecutionStatus"],
                    )
                )
    return items + _jobs(settings, sm, table)


def scheduler_role_name(settings: Settings) -> str:
    """The name the stack gives the role EventBridge Scheduler assumes."""
    return f"{settings.project}-scheduler-{settings.region}"


def _schedules(settings: Settings, session: Any) -> list[Item]:
    scheduler = session.client("scheduler")
    found = []
    for group in list_all(scheduler, "list_schedule_groups", "ScheduleGroups"):
        listed = scheduler.list_tags_for_resource(ResourceArn=group["Arn"]).get("Tags")
        if group["Name"] == "default" or not tags.is_project(settings, listed):
            continue
        for schedule in list_all(scheduler, "list_schedules", "Schedules", GroupName=group["Name"]):
            found.append(
                Item(
                    "schedule",
                    schedule["Name"],
                    schedule["Arn"],
                    schedule.get("State", ""),
                    group=group["Name"],
                )
            )
    # Schedules cannot be tagged: one in the default group is the project's when it runs as
    # the project's scheduler role.
    role_suffix = f":role/{scheduler_role_name(settings)}"
    for schedule in list_all(scheduler, "list_schedules", "Schedules", GroupName="default"):
        target = scheduler.get_schedule(Name=schedule["Name"], GroupName="default").get(
            "Target", {}
        )
        if str(target.get("RoleArn", "")).endswith(role_suffix):
            found.append(
                Item(
                    "schedule",
                    schedule["Name"],
                    schedule["Arn"],
                    schedule.get("State", ""),
                    group="default",
                )
            )
    return found


def bucket_bytes(s3: Any, bucket: str) -> int:
    """Every object version's size (noncurrent versions are billed too)."""
    versions = list_all(s3, "list_object_versions", "Versions", Bucket=bucket)
    return sum(int(v.get("Size", 0)) for v in versions)


def project_repositories(settings: Settings, ecr: Any) -> list[dict[str, Any]]:
    repos = list_all(ecr, "describe_repositories", "repositories")
    return [
        r
        for r in repos
        if tags.is_project(
            settings, ecr.list_tags_for_resource(resourceArn=r["repositoryArn"]).get("tags")
        )
    ]


def _storage(
    settings: Settings, session: Any, bucket: str, table: prices.PriceTable
) -> list[Storage]:
    found = []
    if bucket:
        size = bucket_bytes(session.client("s3"), bucket)
        found.append(Storage(f"s3://{bucket}", size, size / 1e9 * table.gb_month("s3")))
    ecr = session.client("ecr")
    for repo in project_repositories(settings, ecr):
        images = list_all(
            ecr, "describe_images", "imageDetails", repositoryName=repo["repositoryName"]
        )
        size = sum(int(i.get("imageSizeInBytes", 0)) for i in images)
        found.append(Storage(repo["repositoryUri"], size, size / 1e9 * table.gb_month("ecr")))
    return found


def collect(session: Any, settings: Settings, bucket: str) -> Inventory:
    """Everything tagged as the project's in the session's region; ``bucket`` "" skips S3."""
    table = prices.table(settings.region)
    items = _sagemaker(settings, session, table) + _schedules(settings, session)
    return Inventory(settings.region, items, _storage(settings, session, bucket, table), table)
