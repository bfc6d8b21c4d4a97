"""What local mode starts as its ``sys.executable`` while tests/programs.py's ``forked_python``
is on (a copy of this file, its SOCKET filled in, runs with ``python -IS``): for
``-m mlstack_containers.<program>`` it asks the program server (tests/program_server.py) to
fork the program with this process's stdin, stdout, stderr, environment and working directory,
passes on the signals it gets, and ends as the program ended (its exit status, or killed by the
same signal); the program ends when this process ends. Anything else runs the real python."""

import contextlib
import json
import os
import signal
import socket
import sys

SOCKET = ""  # filled in by tests/programs.py

args = sys.argv[1:]
if len(args) < 2 or args[0] != "-m" or not args[1].startswith("mlstack_containers."):
    os.execv(sys.executable, [sys.executable, *args])
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect(SOCKET)
request = {
    "module": args[1],
    "args": args[2:],
    "env": dict(os.environ),
    "cwd": os.getcwd(),
    "shim": os.getpid(),
}
socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
answers = conn.makefile("rb")
pid = int(answers.readline().split()[1])


def forward(signum: int, _frame: object) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(signum, forward)
line = answers.readline()
code = os.waitstatus_to_exitcode(int(line.split()[1]))
if code < 0:  # killed by a signal: so is this process
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
