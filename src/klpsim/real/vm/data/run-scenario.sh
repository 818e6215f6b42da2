#!/bin/bash
# Run one klpsim scenario script the way a kselftest script runs: the
# kernel's own functions.sh, then the project's verbs, then setup_config.
cd /klp/work || exit 2
export KDIR=/klp
. /klp/functions.sh
. /klp/klpsim.sh
setup_config
. "$1"
