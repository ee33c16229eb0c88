"""The run's first line, the portal's own: what it runs, on which hosts, from where."""

from types import SimpleNamespace

from apps.runs.runner import START_LINE_HOSTS, start_line


def _run(**fields):
    return SimpleNamespace(
        **{
            "playbook_path": "deploy.yml",
            "playbook_commit": "0123456789abcdef0123456789abcdef01234567",
            "inventory": {},
            "inventory_path": "",
            "check_mode": False,
            "worker": "celery@w1",
            **fields,
        }
    )


def test_it_names_the_playbook_commit_hosts_and_worker():
    inventory = {
        "web": {"hosts": {"web1": {}, "web2": None}, "children": {"eu": {"hosts": {"web3": {}}}}},
        "db": {"hosts": {"db1": {}, "web1": {}}},
        "all": {"vars": {"app": "hello"}},
    }

    assert start_line(_run(inventory=inventory)) == (
        "Pushbutton runs deploy.yml at commit 0123456789ab on web1, web2, web3, db1, "
        "from worker celery@w1."
    )


def test_a_long_inventory_is_counted_past_the_first_hosts():
    hosts = {f"web{n}": {} for n in range(1, START_LINE_HOSTS + 4)}

    line = start_line(_run(inventory={"web": {"hosts": hosts}}))

    assert f"web{START_LINE_HOSTS}" in line
    assert f"web{START_LINE_HOSTS + 1}" not in line
    assert " and 3 more, from worker" in line


def test_a_dry_run_and_an_inventory_of_the_repository_say_so():
    line = start_line(_run(check_mode=True, inventory_path="inventories/test.yml"))

    assert line == (
        "Pushbutton runs deploy.yml at commit 0123456789ab (dry run: --check --diff) on the "
        "hosts of inventories/test.yml (in the repository), from worker celery@w1."
    )
