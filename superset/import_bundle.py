"""Import superset/bundle into Superset, overwriting what an earlier import made (run by superset/provision with
superset/.venv's Python and the instance's environment).

`superset import-dashboards` keeps an existing database connection, datasets and charts and only replaces the
dashboard, so a changed MongoDB URI or an edited chart file would not take effect on an initialised instance.
Superset's assets import (what `POST /api/v1/assets/import/` runs) overwrites everything, matched by uuid: the files
stay the source of truth.

    MONGO_SQLALCHEMY_URI=<sqlalchemy uri> python import_bundle.py <bundle dir> <username>

The URI comes from the environment, not the command line, since it may carry a password and every user can read a
process's arguments.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

URI_VARIABLE = "MONGO_SQLALCHEMY_URI"
URI_PLACEHOLDER = "${" + URI_VARIABLE + "}"


def bundle_contents(bundle: Path, uri: str) -> dict[str, str]:
    """The bundle's files by relative path, as the importer reads them from a ZIP, with the connection filled in."""
    contents = {}
    for path in sorted(bundle.rglob("*.yaml")):
        text = path.read_text()
        if path.parent.name == "databases":
            text = text.replace(URI_PLACEHOLDER, uri)
        contents[path.relative_to(bundle).as_posix()] = text
    return contents


def main(bundle: str, username: str) -> None:
    from flask import g
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from superset.commands.importers.v1.assets import ImportAssetsCommand

        from superset import security_manager

        g.user = security_manager.find_user(username=username)
        ImportAssetsCommand(bundle_contents(Path(bundle), os.environ[URI_VARIABLE])).run()


if __name__ == "__main__":
    main(*sys.argv[1:])
