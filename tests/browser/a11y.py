"""Accessibility check of a page with axe-core (axe-playwright-python), for every browser
test: `assert_accessible(page)` fails listing each serious or critical violation of the
page as it is now (open a dialog or fold a section first to check that state), or of the part
`within` selects (on a Django admin page: the part the project renders, not the admin's own)."""

from axe_playwright_python.sync_playwright import Axe

# Minor and moderate findings are reported by axe too; the bar is none of these.
FAILING_IMPACTS = ("serious", "critical")

_axe = Axe()


def accessibility_violations(page, *, impacts=FAILING_IMPACTS, within=None) -> list[dict]:
    """The violations of the page (or of the part `within` selects, a CSS selector) as it is
    now whose impact is one of `impacts`."""
    page.wait_for_load_state("load")
    results = _axe.run(page, context=within)
    return [v for v in results.response["violations"] if v["impact"] in impacts]


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {', '.join(map(str, node['target']))}: {node['html'][:160]}")
            lines.extend(f"      - {check['message']}" for check in node.get("any", [])[:2])
    return "\n".join(lines)


def assert_accessible(page, *, what: str = "", within=None) -> None:
    """Fail when axe finds a serious or critical violation on the page (or in the part
    `within` selects) as it is now."""
    violations = accessibility_violations(page, within=within)
    assert not violations, (
        f"axe: {len(violations)} serious or critical violation(s) on {what or page.url}:\n"
        + describe(violations)
    )
