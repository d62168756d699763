"""docker-compose.yml and deploy/prometheus.yml against the code they deploy: no Docker
daemon runs here, so these checks catch what `docker compose up` would only show later
(a misspelt setting is silently ignored, a stage command that does not exist, a health
check on a port nothing listens on, a scrape target on the wrong port)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from cli.placement import INDEXER_STATE
from core.settings import Settings
from indexer.factory import embedded_index_path

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PROMETHEUS = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
STAGES = {
    name: service
    for name, service in SERVICES.items()
    if str(service.get("image", "")).startswith("livewitness")
}


def test_every_stage_of_the_pipeline_is_a_service() -> None:
    commands = {service["command"][0] for service in STAGES.values()}
    assert commands == {"api", "recorder", "transcriber", "indexer"}
    assert {"postgres", "minio", "elasticsearch"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_runs_a_real_command_and_is_checked_where_it_listens(name: str) -> None:
    service = STAGES[name]
    command = [str(part) for part in service["command"]]
    result = CliRunner().invoke(app, [command[0], "--help"])
    assert result.exit_code == 0, result.output
    for option in (part for part in command[1:] if part.startswith("--")):
        assert option in result.output, f"{name}: {option} is not an option of {command[0]}"
    port = command[command.index("--port") + 1] if "--port" in command else None
    port = port or command[command.index("--metrics-port") + 1]
    health = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/" in health
    # Every stage signs or checks signatures with the deployment's one key.
    assert "keys:/data/keys" in service["volumes"]


def environments() -> list[tuple[str, str]]:
    """Each variable once, with the first place it is set (stages merge the shared ones)."""
    found = {key: "x-livewitness-env" for key in COMPOSE["x-livewitness-env"]}
    for name, service in STAGES.items():
        for key in service.get("environment", {}):
            found.setdefault(key, name)
    return [(where, key) for key, where in found.items()]


@pytest.mark.parametrize(("where", "variable"), environments())
def test_every_livewitness_variable_is_a_setting(where: str, variable: str) -> None:
    assert variable.startswith("LIVEWITNESS_"), f"{where}: {variable}"
    field = variable.removeprefix("LIVEWITNESS_").lower()
    assert field in Settings.model_fields, f"{where}: {variable} is not a setting"


def test_named_volumes_are_declared() -> None:
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_prometheus_scrapes_each_stage_on_its_metrics_port() -> None:
    ports: dict[str, str] = {}
    for name, service in STAGES.items():
        command = [str(part) for part in service["command"]]
        if "--metrics-port" in command:
            ports[name] = command[command.index("--metrics-port") + 1]
    scraped: dict[str, str] = {}
    for job in PROMETHEUS["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                scraped[host] = port
        for dns in job.get("dns_sd_configs", []):
            for host in dns["names"]:
                scraped[host] = str(dns["port"])
    for name, port in ports.items():
        assert scraped.get(name) == port, f"{name} serves metrics on {port}"
    api = STAGES["api"]["command"]
    assert scraped["api"] == str(api[api.index("--port") + 1])
    paths = [job["metrics_path"] for job in PROMETHEUS["scrape_configs"] if "metrics_path" in job]
    assert paths == ["/api/v1/metrics"]


def test_the_image_copies_every_package_the_project_ships() -> None:
    # The image builds from a copy of the tree: a room left out would install without it.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = {name.rstrip("*") for name in include}
    copied = set(re.findall(r"^COPY (\w+) \1$", (ROOT / "Dockerfile").read_text(), flags=re.M))
    assert shipped <= copied, f"Dockerfile does not copy {sorted(shipped - copied)}"


# -- what the stages share, per backend (issue 14) ------------------------------------

SUBSTITUTION = re.compile(r"\$\{(\w+)(?::?([-?]))([^}]*)\}")


def stage_settings(name: str, **override: str) -> Settings:
    """The settings a stage container runs with (compose's own defaults filled in, a
    placeholder for each required secret), plus ``override`` (LIVEWITNESS_ names)."""
    env = {**COMPOSE["x-livewitness-env"], **STAGES[name].get("environment", {}), **override}

    def fill(match: re.Match[str]) -> str:
        return match.group(3) if match.group(2) == "-" else "secret"

    fields = {
        key.removeprefix("LIVEWITNESS_").lower(): SUBSTITUTION.sub(fill, str(value))
        for key, value in env.items()
    }
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg, arg-type]


def volume_at(name: str, path: Path) -> str:
    """The volume that holds ``path`` in a stage's container (the deepest mount over it;
    the image's own VOLUMEs are anonymous, one per container)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    mounts = {
        Path(v): f"anonymous:{name}"
        for v in re.findall(r"^VOLUME \[?\"?([^\]\"\n]+)", dockerfile, flags=re.M)
    }
    for volume in STAGES[name].get("volumes", []):
        source, target = str(volume).split(":")[:2]
        mounts[Path(target)] = source
    over = [target for target in mounts if path == target or target in path.parents]
    assert over, f"{name}: nothing is mounted over {path}: it would be lost with the container"
    return mounts[max(over, key=lambda target: len(target.parts))]


def test_the_api_and_the_indexer_share_the_embedded_index_whichever_engine_is_set() -> None:
    # Switching to the embedded engine is configuration only: the directory is shared.
    embedded = {"LIVEWITNESS_SEARCH_BACKEND": "embedded"}
    api, indexer = stage_settings("api", **embedded), stage_settings("indexer", **embedded)
    index_dir = embedded_index_path(api).parent
    assert index_dir == embedded_index_path(indexer).parent
    assert volume_at("api", index_dir) == volume_at("indexer", index_dir)
    # The indexer's state lives there too: it is how the api tells an indexer writes it.
    state = indexer.home.joinpath(*INDEXER_STATE)
    assert state.parent == index_dir


def test_this_layout_needs_no_shared_data_directory() -> None:
    # PostgreSQL, S3 and Elasticsearch: no stage needs another stage's /data. With a
    # SQLite catalog or local blobs every stage would have to share one /data volume.
    for name in STAGES:
        settings = stage_settings(name)
        assert settings.catalog_url and settings.catalog_url.startswith("postgresql")
        assert settings.blob_backend == "s3"
    assert stage_settings("api").search_backend == "elasticsearch"
    homes = {volume_at(name, stage_settings(name).home) for name in STAGES}
    assert len(homes) > 1, "one /data for all stages: then say so and drop the search volume"


def test_the_deployment_guide_says_what_the_stages_share_per_backend() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    section = guide.split("## What the stages share", 1)[1].split("\n## ", 1)[0]
    for backend in ("SQLite", "PostgreSQL", "local", "S3", "embedded", "Elasticsearch"):
        assert backend in section, f"docs/deploy.md does not say what {backend} needs"
    assert "cannot start" in section  # the refusals a stage gives
