"""What every page's navigation needs: the section the page belongs to."""

# A page's section by its URL namespace; a launch page (a service's form, Promote, Roll
# back) and a lock belong to the catalog they are reached from.
SECTIONS = {
    "catalog": "catalog",
    "insights": "insights",
    "audit": "audit",
    "runs": "runs",
    "schedules": "schedules",
}
CATALOG_PAGES = {("runs", "form"), ("runs", "promote"), ("runs", "rollback")}
# The insights page, beside what runs where; the workers page, for Ops.
PAGES = {("insights", "dora"): "dora", ("insights", "workers"): "workers"}


def section(request) -> dict:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return {}
    if (match.namespace, match.url_name) in CATALOG_PAGES or match.namespace == "environments":
        return {"nav_section": "catalog"}
    where = (match.namespace, match.url_name)
    return {"nav_section": PAGES.get(where) or SECTIONS.get(match.namespace, "")}
