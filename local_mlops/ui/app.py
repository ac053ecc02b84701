"""The dashboard: a small Starlette app served by uvicorn on 127.0.0.1.

Pages render on the server (Jinja2, SVG charts from ``charts.py``); ``static/app.js`` refreshes the
page body in place while something is in flight. The only write is a version's approval (which
deploys it, as ``models approve`` does; the page polls the deployment's progress), a JSON
POST (a cross-site form cannot send that without a CORS preflight, which is never granted), and
the Host header must name the loopback address the app listens on (against DNS rebinding).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from local_mlops.errors import LocalMlopsError
from local_mlops.ui import endpoints as ep
from local_mlops.ui import monitoring as mon
from local_mlops.ui import views
from local_mlops.ui.data import Dashboard

HERE = Path(__file__).parent
ALLOWED_HOSTS = ("127.0.0.1", "localhost")
APPROVAL_STATUSES = {"approve": "Approved", "reject": "Rejected"}


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = views.duration
    env.filters["when"] = views.when
    env.filters["pct"] = views.pct
    env.filters["num"] = views.num
    env.globals["svg"] = Markup
    return env


def create_app(dashboard: Dashboard) -> Starlette:
    """The ASGI app over one dashboard (its settings and the local target's stores)."""
    env = _environment()

    def page(request: Request, template: str, **context: Any) -> HTMLResponse:
        fragment = request.query_params.get("fragment") == "1"
        html = env.get_template(template).render(
            request=request, fragment=fragment, settings=dashboard.settings, **context
        )
        return HTMLResponse(html)

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=302)

    async def runs(request: Request) -> Response:
        items = dashboard.runs()
        return page(request, "runs.html", runs=items, live=any(r.live for r in items))

    async def run(request: Request) -> Response:
        view = dashboard.run(request.path_params["execution"])
        return page(
            request,
            "run.html",
            run=view,
            **views.run_context(view, dashboard.settings),
            live=view.live,
        )

    async def compare(request: Request) -> Response:
        ids = [i for i in request.query_params.getlist("run") if i][:2]
        if len(ids) != 2:
            raise LocalMlopsError("pick two runs to compare", "tick two runs on the Runs page")
        left, right = dashboard.run(ids[0]), dashboard.run(ids[1])
        return page(request, "compare.html", **views.compare_context(left, right), live=False)

    async def models(request: Request) -> Response:
        packages = dashboard.packages()
        return page(request, "models.html", packages=views.package_rows(packages), live=False)

    async def model(request: Request) -> Response:
        version = _version(request.path_params["version"])
        package = dashboard.package(version)
        evaluation = dashboard.evaluation(package)
        return page(
            request,
            "model.html",
            package=package,
            **views.model_context(package, evaluation, dashboard),
            deployment=next(
                (d for d in dashboard.deployments.latest() if d.version == version), None
            ),
            live=False,
        )

    async def approval(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "send the approval as application/json", "")
        version = _version(request.path_params["version"])
        action = request.path_params["action"]
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "the body is not JSON", 'send {"reason": "..."}')
        reason = str(body.get("reason", "")) if isinstance(body, dict) else ""
        if action == "reject" and not reason.strip():
            return _error(400, "a rejection needs a reason", 'send {"reason": "why"}')
        if action == "approve":
            package, job = dashboard.approve_and_deploy(version, reason)
            answer = {"ModelPackageVersion": version, **_brief(package)}
            return JSONResponse({**answer, "deployment": job.to_json()}, status_code=202)
        package = dashboard.set_approval(version, APPROVAL_STATUSES[action], reason)
        return JSONResponse({"ModelPackageVersion": version, **_brief(package)})

    async def deployment(request: Request) -> Response:
        return JSONResponse(dashboard.deployments.get(request.path_params["id"]).to_json())

    async def endpoints_page(request: Request) -> Response:
        rows = ep.endpoint_rows(dashboard.settings)
        running = dashboard.deployments.running()
        live = bool(running) or any(r["status"] in ep.TRANSITIONAL for r in rows)
        return page(request, "endpoints.html", endpoints=rows, deployments=running, live=live)

    async def endpoint_page(request: Request) -> Response:
        name = request.path_params["name"]
        view = ep.describe(dashboard.settings, name)
        timeline = ep.metrics(dashboard.settings)
        update = ep.update_state(view)
        running = [d for d in dashboard.deployments.running() if d.endpoint == name]
        live = bool(running) or bool(update and update["in_progress"])
        return page(
            request,
            "endpoint.html",
            endpoint=view,
            update=update,
            deployments=running,
            charts=ep.timeline_charts(timeline, view),
            totals=ep.totals(timeline, name) if timeline else None,
            router_running=timeline is not None,
            live=live or ep.recent_traffic(timeline, name),
        )

    async def monitoring_index(request: Request) -> Response:
        names = mon.endpoints_with_reports(dashboard.cache)
        rows = []
        for name in names:
            items = mon.reports(dashboard.cache, name)
            rows.append(
                {"endpoint": name, "count": len(items), "latest": items[-1] if items else None}
            )
        return page(request, "monitoring.html", endpoints=rows, live=False)

    async def monitoring_page(request: Request) -> Response:
        name = request.path_params["endpoint"]
        items = mon.reports(dashboard.cache, name)
        if not items:
            raise LocalMlopsError(
                f"no monitoring report for endpoint {name} exists",
                f"run one: local-mlops monitor run --endpoint {name}",
            )
        version = next(
            (r["version"] for r in ep.endpoint_rows(dashboard.settings) if r["name"] == name), None
        )
        baseline = dashboard.baseline_statistics(version)
        return page(
            request,
            "monitor.html",
            endpoint=name,
            version=version,
            **mon.page_context(items, baseline),
            live=False,
        )

    async def labeling(request: Request) -> Response:
        return page(request, "labeling.html", captures=dashboard.captures(), live=False)

    async def api_endpoints(request: Request) -> Response:
        return JSONResponse(ep.endpoint_rows(dashboard.settings))

    async def api_runs(request: Request) -> Response:
        return JSONResponse([views.run_row(r) for r in dashboard.runs()])

    async def api_models(request: Request) -> Response:
        return JSONResponse(views.package_rows(dashboard.packages()))

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/runs", runs),
            Route("/runs/{execution}", run),
            Route("/compare", compare),
            Route("/models", models),
            Route("/models/{version}", model),
            Route("/endpoints", endpoints_page),
            Route("/endpoints/{name}", endpoint_page),
            Route("/monitoring", monitoring_index),
            Route("/monitoring/{endpoint}", monitoring_page),
            Route("/labeling", labeling),
            Route("/api/models/{version}/{action:str}", approval, methods=["POST"]),
            Route("/api/deployments/{id}", deployment),
            Route("/api/runs", api_runs),
            Route("/api/models", api_models),
            Route("/api/endpoints", api_endpoints),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={LocalMlopsError: _project_error, 404: _not_found},
        middleware=[],
    )
    app.state.env = env
    app.state.dashboard = dashboard
    app.add_middleware(_LoopbackOnly)
    return app


def _version(text: str) -> int:
    if not text.isdigit():
        raise LocalMlopsError(f"not a model version: {text!r}", "versions are numbers: /models/1")
    return int(text)


def _brief(package: dict[str, Any]) -> dict[str, Any]:
    return {
        "ModelApprovalStatus": package.get("ModelApprovalStatus"),
        "ApprovalDescription": package.get("ApprovalDescription", ""),
    }


def _error(status: int, error: str, fix: str) -> JSONResponse:
    return JSONResponse({"error": error, "fix": fix}, status_code=status)


async def _project_error(request: Request, exc: Exception) -> Response:
    error = exc if isinstance(exc, LocalMlopsError) else LocalMlopsError(str(exc))
    missing = ("does not exist", "no local execution", "no local endpoint", "no monitoring report")
    status = 404 if any(m in error.message for m in missing) else 400
    if request.url.path.startswith("/api/"):
        return _error(status, error.message, error.fix or "")
    html = request.app.state.env.get_template("error.html").render(
        request=request,
        fragment=False,
        error=error,
        status=status,
        live=False,
        settings=request.app.state.dashboard.settings,
    )
    return HTMLResponse(html, status_code=status)


async def _not_found(request: Request, exc: Exception) -> Response:
    return await _project_error(
        request, LocalMlopsError(f"{request.url.path} does not exist", "start from /runs")
    )


class _LoopbackOnly:
    """Refuses requests whose Host header is not the loopback address (DNS rebinding)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1").rsplit(":", 1)[0].strip("[]")
            if host not in ALLOWED_HOSTS:
                response = _error(421, f"this dashboard answers on 127.0.0.1, not {host!r}", "")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
