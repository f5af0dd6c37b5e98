#!/bin/sh
# none: does nothing; the agent still starts (useful with ivmon.hold= or ivmon.shell=1).
exit 0
