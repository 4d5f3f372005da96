"""Reading functions from an in-memory FunctionApp: triggers, parameters and clear startup errors."""

from __future__ import annotations

import azure.functions as func
import pytest

from local.minihost.errors import AppLoadError, BindingError
from local.minihost.loader import FunctionSpec, HttpTrigger, QueueTrigger, TimerTrigger, read_functions

STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def read(app: func.FunctionApp, environ: dict[str, str] | None = None) -> dict[str, FunctionSpec]:
    specs = read_functions(
        app, app_ref="test:app", directory="/app", environ=STORAGE if environ is None else environ
    )
    return {spec.name: spec for spec in specs}


def test_each_trigger_kind_becomes_a_typed_spec() -> None:
    # GIVEN an app with an HTTP, a queue (async) and a timer function
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="items/{id}", methods=["GET", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
    def get_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("x")

    @app.route(route="secure", trigger_arg_name="request")
    def secure(request: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return func.HttpResponse("x")

    @app.queue_trigger(arg_name="msg", queue_name="hr-events", connection="AzureWebJobsStorage")
    async def on_event(msg: func.QueueMessage) -> None:
        return None

    @app.timer_trigger(schedule="0 */5 * * * *", arg_name="tick", run_on_startup=True)
    def every_five_minutes(tick: func.TimerRequest) -> None:
        return None

    # WHEN reading its functions
    specs = read(app)

    # THEN triggers, parameter names, auth levels and async-ness are what the decorators declared
    http_spec = specs["get_item"]
    assert isinstance(http_spec.trigger, HttpTrigger)
    assert http_spec.trigger.methods == frozenset({"GET", "DELETE"})
    assert http_spec.trigger.auth_level == "anonymous"
    assert http_spec.trigger.route.match("items/7") == {"id": "7"}
    assert (http_spec.trigger_parameter, http_spec.context_parameter, http_spec.is_async) == (
        "req",
        None,
        False,
    )
    secure_spec = specs["secure"]
    assert isinstance(secure_spec.trigger, HttpTrigger)
    assert secure_spec.trigger.auth_level == "function"  # inherited from the app
    assert secure_spec.trigger.methods is None  # no methods listed: every method
    assert (secure_spec.trigger_parameter, secure_spec.context_parameter) == ("request", "context")
    queue_spec = specs["on_event"]
    assert queue_spec.trigger == QueueTrigger(
        "hr-events", "AzureWebJobsStorage", "UseDevelopmentStorage=true"
    )
    assert queue_spec.is_async
    timer_spec = specs["every_five_minutes"]
    assert isinstance(timer_spec.trigger, TimerTrigger)
    assert timer_spec.trigger.run_on_startup
    assert timer_spec.trigger.schedule.expression == "0 */5 * * * *"
    assert timer_spec.trigger_parameter == "tick"


def test_the_default_route_is_the_function_name() -> None:
    app = func.FunctionApp()

    @app.function_name("Health")
    @app.route(methods=["GET"])
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    trigger = read(app)["Health"].trigger
    assert isinstance(trigger, HttpTrigger)
    assert trigger.route.template == "Health"
    assert trigger.route.match("health") == {}  # literals match case-insensitively


def test_app_settings_in_binding_properties_are_expanded() -> None:
    # GIVEN %SETTING% references in a queue name and a schedule
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="%QUEUE%", connection="MyStorage")
    def worker(msg: func.QueueMessage) -> None:
        return None

    @app.timer_trigger(schedule="%SCHEDULE%", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        return None

    # WHEN reading with those settings (the connection found with the AzureWebJobs prefix, like the host)
    specs = read(app, {"QUEUE": "wave-work", "SCHEDULE": "0 0 * * * *", "AzureWebJobsMyStorage": "conn"})

    # THEN the values are substituted
    assert specs["worker"].trigger == QueueTrigger("wave-work", "MyStorage", "conn")
    timer = specs["tick"].trigger
    assert isinstance(timer, TimerTrigger)
    assert timer.schedule.expression == "0 0 * * * *"


def test_an_empty_connection_means_azure_web_jobs_storage() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="alerts", connection="")
    def worker(msg: func.QueueMessage) -> None:
        return None

    trigger = read(app)["worker"].trigger
    assert isinstance(trigger, QueueTrigger)
    assert trigger.connection == "AzureWebJobsStorage"


def test_get_functions_is_called_once_and_a_second_read_says_why_it_fails() -> None:
    # GIVEN an app already read once WHEN reading it again THEN azure-functions refuses, and we say so
    app = func.FunctionApp()

    @app.route(route="ping")
    def ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("pong")

    read(app)
    with pytest.raises(AppLoadError, match=r"test:app.get_functions\(\) failed: .*called only once"):
        read(app)


def unsupported_output_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="in-queue", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="out-queue", connection="AzureWebJobsStorage")
    def forward(msg: func.QueueMessage, out: func.Out[str]) -> None:
        out.set(msg.get_body().decode())

    return app


def unsupported_trigger_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.blob_trigger(arg_name="blob", path="container/{name}", connection="AzureWebJobsStorage")
    def on_blob(blob: func.InputStream) -> None:
        return None

    return app


def unbound_parameter_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.route(route="x")
    def needs_more(req: func.HttpRequest, settings: dict[str, str]) -> func.HttpResponse:
        return func.HttpResponse("x")

    return app


def wrong_annotation_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="in-queue", connection="AzureWebJobsStorage")
    def typed_wrong(msg: func.HttpRequest) -> None:
        return None

    return app


def bad_queue_name_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="Bad_Queue", connection="AzureWebJobsStorage")
    def worker(msg: func.QueueMessage) -> None:
        return None

    return app


def missing_connection_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="in-queue", connection="OtherStorage")
    def worker(msg: func.QueueMessage) -> None:
        return None

    return app


def bad_schedule_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.timer_trigger(schedule="*/5 * * * *", arg_name="timer")
    def five_fields(timer: func.TimerRequest) -> None:
        return None

    return app


def missing_setting_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="%NOT_SET%", connection="AzureWebJobsStorage")
    def worker(msg: func.QueueMessage) -> None:
        return None

    return app


def bad_route_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.route(route="items/{id:nosuch}")
    def items(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("x")

    return app


@pytest.mark.parametrize(
    ("build", "mentions"),
    [
        (
            unsupported_output_app,
            "function 'forward': binding 'out' of type 'queue' (direction OUT) is not supported",
        ),
        (
            unsupported_trigger_app,
            "function 'on_blob': trigger 'blob' of type 'blobTrigger' is not supported",
        ),
        (
            unbound_parameter_app,
            "function 'needs_more': parameters ['settings'] are not bound by any binding",
        ),
        (wrong_annotation_app, "function 'typed_wrong': parameter 'msg' is annotated HttpRequest"),
        (bad_queue_name_app, "function 'worker': queueName 'Bad_Queue': expected 3-63 lowercase letters"),
        (missing_connection_app, "function 'worker': queue trigger connection 'OtherStorage' is not set"),
        (bad_schedule_app, "function 'five_fields': schedule '*/5 * * * *' has 5 fields; expected 6"),
        (missing_setting_app, "function 'worker': queueName '%NOT_SET%' refers to app setting 'NOT_SET'"),
        (
            bad_route_app,
            "function 'items': route 'items/{id:nosuch}': parameter 'id' has unsupported constraint",
        ),
    ],
)
def test_functions_the_host_cannot_run_are_startup_errors_naming_function_and_binding(
    build: object, mentions: str
) -> None:
    # GIVEN an app with something the mini-host cannot serve WHEN reading it THEN a clear BindingError
    assert callable(build)
    with pytest.raises(BindingError) as raised:
        read(build())
    assert mentions in str(raised.value)
