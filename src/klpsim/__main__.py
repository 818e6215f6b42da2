from klpsim.cli import entry

entry()
