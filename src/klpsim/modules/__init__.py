"""Modules klpsim can load: models of the kselftest modules and TOML definitions."""
