"""The README's custom-toolbox program runs as written and gives a working, trained network."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- example: {marker} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"README has no '{marker}' example"
    return match.group(1)


def test_toolbox_example_runs(ray_session):
    namespace: dict = {}
    exec(compile(readme_block("toolbox"), "README.md", "exec"), namespace)
    hof, logbook, model, task = namespace["hof"], namespace["logbook"], namespace["model"], namespace["task"]
    namespace["toolbox"].map.close()
    assert [r["epochs"] for r in logbook] == [2, 4, 6]
    from tasks.digits import accuracy

    assert accuracy(model, *task.data["val"]) == hof[0].fitness.values[0] > 0.8


def test_readme_commands_match_ci():
    ci = (README.parent / ".ci" / "run").read_text()
    setup = re.search(r"```bash\n(python3 -m venv .venv && .*?) && \.venv/bin/python -m pbt_evo.run", README.read_text()).group(1)
    assert "torch==2.14.1 torchvision==0.29.1 -e \".[all]\"" in setup and "torch==2.14.1 torchvision==0.29.1 -e \".[all]\"" in ci
    assert ".venv/bin/python -m pytest\n" in README.read_text() and ".venv/bin/python -m pytest\n" in ci
