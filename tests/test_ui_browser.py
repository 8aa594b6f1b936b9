"""The Milvus connection form in Airflow's real UI, driven through headless Chromium.

A throwaway `airflow api-server` serves the React UI with this provider installed. The
browser adds a Milvus connection, checks our labelled fields, saves it, reopens it, and
presses Test against the real Milvus server. Screenshots land in test-artifacts/.

With ``AIRFLOW_MILVUS_UI_VENV`` set to another virtualenv (``.venvs/low`` from
``bash scripts/matrix.sh low``: Airflow 3.1), one more test drives that Airflow's UI: 3.1 reads
the form from ``MilvusHook.get_connection_form_widgets`` and ``get_ui_field_behaviour``, not
from the provider info's ``conn-fields``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from airflow_milvus.get_provider_info import CONN_FIELDS
from tests.airflow_deployment import AirflowDeployment
from tests.browser.chromium import LAUNCH_ARGS, ensure_chromium
from tests.milvus_server import free_port

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CONN_ID = "milvus_ui"
# Labels declared in get_provider_info()["connection-types"][0]["conn-fields"].
EXTRA_FIELD_LABELS = (
    "URI",
    "Token",
    "Database",
    "TLS (secure)",
    "Server PEM path",
    "Server name",
    "CA PEM path",
    "Client PEM path",
    "Client key path",
)


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path, reason = ensure_chromium()
    if not path:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    # The api-server alone (REST API and UI), with connection testing on: Airflow disables it by default.
    home = tmp_path_factory.mktemp("airflow-ui")
    env = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    with AirflowDeployment(home, env=env, components=("api-server",), dag_ids=(), pools={}) as server:
        yield server


@pytest.fixture
def page(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=LAUNCH_ARGS)
        try:
            # Tall enough that the whole connection form fits in one screenshot.
            yield browser.new_page(viewport={"width": 1400, "height": 1900})
        finally:
            browser.close()


def field(container, label: str):
    """The form field whose visible label is exactly ``label``.

    Airflow 3.3's extra-field labels point at an id the input does not carry, so
    ``get_by_label`` cannot find them; the field group (label + input + help) can.
    """
    return container.get_by_role("group").filter(has=container.page.get_by_text(label, exact=True))


def stored_connection(api_server: AirflowDeployment, conn_id: str = CONN_ID) -> dict:
    return api_server.api("GET", f"/api/v2/connections/{conn_id}")


def create_connection(api_server: AirflowDeployment, conn_id: str, uri: str, port: int) -> None:
    body = {"connection_id": conn_id, "conn_type": "milvus", "port": port, "extra": json.dumps({"uri": uri})}
    api_server.api("POST", "/api/v2/connections", body)


@pytest.mark.server
def test_milvus_connection_form_saves_and_tests_ok(page, api_server, milvus_server):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _drive_connection_form(page, api_server, milvus_server, expect)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "ui-connection-failure.png"), full_page=True)
        raise


def _drive_connection_form(page, api_server, milvus_server, expect) -> None:
    page.goto(api_server.url)
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    expect(page).to_have_url(re.compile(r"/connections$"))

    # Add a connection of type Milvus.
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(CONN_ID)
    dialog.get_by_role("combobox", name="Connection Type").fill("Milvus")
    page.get_by_role("option", name="Milvus", exact=True).click()

    # Standard fields carry our relabelling and placeholders.
    expect(dialog.get_by_label("Scheme (http/https)")).to_be_visible()
    expect(dialog.get_by_label("Host")).to_have_attribute("placeholder", re.compile("Milvus Lite"))
    # Airflow 3.3.2's Test button sends port 0 for a connection saved without a port, which
    # its API rejects as "a different endpoint" (fixed upstream in apache/airflow#73298).
    # Saving the server's port avoids that; the URI still decides where the hook connects.
    dialog.get_by_label("Port").fill(str(milvus_server.port))

    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for label in EXTRA_FIELD_LABELS:
        expect(field(dialog, label)).to_have_count(1)
        expect(field(dialog, label)).to_be_visible()
    for label in ("URI", "Token", "Database", "Server PEM path", "CA PEM path", "Client PEM path"):
        expect(field(dialog, label).locator("input")).to_be_editable()
    expect(field(dialog, "Token").locator("input")).to_have_attribute("type", "password")
    expect(dialog.get_by_role("checkbox", name="TLS (secure)")).not_to_be_checked()
    expect(field(dialog, "URI")).to_contain_text("Milvus Lite path ending in .db")

    field(dialog, "URI").locator("input").fill(milvus_server.uri)
    dialog.screenshot(path=str(ARTIFACTS / "ui-connection-form.png"))
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()

    row = page.get_by_role("row").filter(has=page.get_by_text(CONN_ID, exact=True))
    expect(row).to_contain_text("milvus")
    saved = stored_connection(api_server)
    assert saved["conn_type"] == "milvus"
    assert json.loads(saved["extra"])["uri"] == milvus_server.uri

    # Open it again: the form shows what was saved.
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    expect(field(dialog, "URI").locator("input")).to_have_value(milvus_server.uri)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    # Test it: MilvusHook.test_connection runs inside the api-server against the real server.
    page.set_viewport_size({"width": 1400, "height": 900})
    row.get_by_role("button", name="Test Connection").click()
    toast = page.get_by_role("status").filter(has_text="Test Connection")
    expect(toast).to_contain_text("Test Connection Successful", timeout=60_000)
    # With an empty host and no URI the hook would fall back to embedded Milvus Lite, so
    # "at <uri>" proves the URI field reached the hook.
    expect(toast).to_contain_text(re.compile(rf"Connected to Milvus v\S+ at {re.escape(milvus_server.uri)}$"))
    toast.hover()  # the toast closes after 2 s unless hovered
    page.screenshot(path=str(ARTIFACTS / "ui-connection.png"), animations="disabled")


def test_unreachable_milvus_shows_failure_in_ui(page, api_server):
    """The Test button reports a dead endpoint as a failure that names it."""
    from playwright.sync_api import expect

    port = free_port()  # nothing listens here
    uri = f"http://127.0.0.1:{port}"
    create_connection(api_server, "milvus_dead", uri, port)

    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{api_server.url}/connections")
    row = page.get_by_role("row").filter(has=page.get_by_text("milvus_dead", exact=True))
    row.get_by_role("button", name="Test Connection").click()
    toast = page.get_by_role("status").filter(has_text="Test Connection")
    # The hook retries an unreachable server within its budget before giving up.
    expect(toast).to_contain_text("Test Connection Failed", timeout=90_000)
    expect(toast).to_contain_text(f"Cannot reach Milvus at {uri}")
    toast.hover()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-connection-unreachable.png"), animations="disabled")


OTHER_VENV = os.environ.get("AIRFLOW_MILVUS_UI_VENV")


@pytest.mark.skipif(not OTHER_VENV, reason="set AIRFLOW_MILVUS_UI_VENV to a virtualenv (.venvs/low: Airflow 3.1)")
def test_connection_form_on_the_airflow_of_another_virtualenv(page, tmp_path):
    """Every field of the form, on the UI of the Airflow in AIRFLOW_MILVUS_UI_VENV; saved and reopened."""
    from playwright.sync_api import expect

    python = Path(OTHER_VENV).resolve() / "bin" / "python"
    with AirflowDeployment(tmp_path / "home", components=("api-server",), dag_ids=(), pools={}, python=python) as server:
        version = server.api("GET", "/api/v2/version")["version"]
        page.goto(server.url)
        page.get_by_role("button", name="Admin").click()
        page.get_by_role("menuitem", name="Connections").click()
        page.get_by_role("button", name="Add Connection").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Connection ID").fill("milvus_other")
        dialog.get_by_role("combobox", name="Connection Type").fill("Milvus")
        page.get_by_role("option", name="Milvus", exact=True).click()

        expect(dialog.get_by_label("Scheme (http/https)")).to_be_visible()  # ui-field-behaviour
        expect(dialog.get_by_label("Host")).to_have_attribute("placeholder", re.compile("Milvus Lite"))
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        for definition in CONN_FIELDS.values():
            expect(field(dialog, definition["label"])).to_have_count(1)
            expect(field(dialog, definition["label"])).to_contain_text(definition["description"])
        if not version.startswith("3.1."):  # 3.1's form shows a "password" format field as plain text
            expect(field(dialog, "Token").locator("input")).to_have_attribute("type", "password")
        expect(dialog.get_by_role("checkbox", name="TLS (secure)")).not_to_be_checked()
        field(dialog, "URI").locator("input").fill("http://milvus.internal:19530")
        field(dialog, "Token").locator("input").fill("root:Milvus")
        ARTIFACTS.mkdir(exist_ok=True)
        dialog.screenshot(path=str(ARTIFACTS / f"ui-connection-form-{version}.png"))
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()

        # Reopened, the form shows what was saved (3.1's REST API wants a token; the UI has one).
        row = page.get_by_role("row").filter(has=page.get_by_text("milvus_other", exact=True))
        row.get_by_role("button", name="Edit Connection").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        expect(field(dialog, "URI").locator("input")).to_have_value("http://milvus.internal:19530")
