#!/bin/sh
# scripted: the fixed sequence of file operations the VM tests check, in every watched directory
# (/run/ivmon/watch: /mnt/tmpfs, and /mnt/ext4 with ivmon.disk=1). In DIR/ivw, each step by its
# own process name (tests/vm/test_plain.py lists the expected events):
#   wl-mkdir   mkdir DIR/ivw                              create (dir)
#   wl-create  create DIR/ivw/a.txt                       create, open, close_write
#   wl-write   append to DIR/ivw/a.txt                    open, modify, close_write
#   wl-chmod   chmod 600 DIR/ivw/a.txt                    attrib
#   wl-rename  DIR/ivw/a.txt -> DIR/ivw/b.txt             rename
#   wl-delete  unlink DIR/ivw/b.txt                       delete
#   wl-copy    copy /bin/busybox to DIR/ivw/busybox-exec  create, open, modify, close_write
#   busybox-exec  DIR/ivw/busybox-exec sleep 0.3          exec (comm is the file's own name)
#   wl-delete  unlink DIR/ivw/busybox-exec                delete
#   wl-rmdir   rmdir DIR/ivw                              delete (dir)
# Nothing is printed per step; IVMON-SCRIPTED-DIR dir=D marks each directory, and any failed
# step prints IVMON-ERROR and makes the workload exit 1.
# Argument: linger in ms for each step's process (default 300).
. /lib/ivmon/ivmon.sh
linger=${1:-300}
rc=0
for base in $(cat /run/ivmon/watch); do
    d=$base/ivw
    ivmon_mark SCRIPTED-DIR "dir=$d"
    s="ivmon_step --linger $linger --name"
    $s wl-mkdir mkdir "$d" &&
        $s wl-create create "$d/a.txt" &&
        $s wl-write write "$d/a.txt" "hello from the guest" &&
        $s wl-chmod chmod "$d/a.txt" 600 &&
        $s wl-rename rename "$d/a.txt" "$d/b.txt" &&
        $s wl-delete delete "$d/b.txt" &&
        $s wl-copy copy /bin/busybox "$d/busybox-exec" &&
        "$d/busybox-exec" sleep 0.3 &&
        $s wl-delete delete "$d/busybox-exec" &&
        $s wl-rmdir rmdir "$d" || rc=1
done
# The last steps' processes linger; let the agent see them alive before it is stopped.
sleep "$((linger / 1000)).$(printf %03d $((linger % 1000)))"
exit $rc
