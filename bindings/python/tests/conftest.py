"""The suite's fixtures: the package's own pytest plugin (a local Polar per test)."""

pytest_plugins = ["polar_license.pytest_plugin"]
