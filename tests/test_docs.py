"""The README's endpoint table is the API a client gets: every named endpoint of the running app (view_api) has one
row, under the tab that wires it, and the table names no endpoint the app lacks."""

import re

from gradio_client import Client

from tests.conftest import REPO_ROOT


def readme_endpoint_rows(text: str) -> dict[str, str]:
    """endpoint -> tab, from the README table whose header is `| tab | endpoint | input | output |`."""
    lines = text.splitlines()
    start = lines.index("| tab | endpoint | input | output |")
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        endpoint = re.fullmatch(r"`(/\w+)`", cells[1])
        assert endpoint, f"the endpoint cell should read `/name`: {line[:80]}"
        assert endpoint.group(1) not in rows, f"{endpoint.group(1)} has two rows"
        rows[endpoint.group(1)] = cells[0]
    return rows


def tab_of_each_endpoint() -> dict[str, str]:
    """endpoint -> the TITLE of the tab module whose function it runs (from the built app, nothing launched)."""
    import app
    import apps

    titles = {module.__name__: module.TITLE for module in apps.TABS}
    demo = app.build_demo()
    return {
        f"/{fn.api_name}": titles.get(fn.fn.__module__, fn.fn.__module__)
        for fn in demo.fns.values()
        if fn.api_visibility == "public" and fn.api_name
    }


def test_readme_endpoint_table_matches_the_running_apps_api(running_app):
    listed = set(Client(running_app.url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"])
    rows = readme_endpoint_rows((REPO_ROOT / "README.md").read_text())
    assert sorted(listed - set(rows)) == [], "add these endpoints to the README's table"
    assert sorted(set(rows) - listed) == [], "the README lists endpoints the app does not have"
    tabs = tab_of_each_endpoint()
    wrong = {api: (rows[api], tabs[api]) for api in rows if rows[api] != tabs[api]}
    assert wrong == {}, "README row's tab -> the tab that wires it"


def test_the_readme_check_catches_a_missing_row_and_a_stale_one():
    text = (REPO_ROOT / "README.md").read_text()
    rows = readme_endpoint_rows(text)
    assert {"/classify_digit", "/attack", "/generate_text"} <= set(rows)
    line = next(line for line in text.splitlines() if line.startswith("| Digits | `/classify_digit` |"))
    assert "/classify_digit" not in readme_endpoint_rows(text.replace(line + "\n", ""))
    stale = text.replace(line, line + "\n| Digits | `/old_name` | a picture | a label |")
    assert "/old_name" in readme_endpoint_rows(stale)
