"""cutoverd's command line: -t on valid and invalid configurations, -V, -h,
and startup failures that must exit 1 with one line naming the cause."""

import os
import re
import socket

from harness import check, cutoverd_path, free_port


def run_cutoverd(env, *args, timeout=20):
    return env.run([cutoverd_path()] + list(args), timeout=timeout)


def error_lines(out):
    return [l for l in out.decode("utf-8", "replace").splitlines() if l.strip()]


def test_check_valid_config(env):
    path, _ = env.write_config(blue=["127.0.0.1:9001", "127.0.0.1:9002"], green=["127.0.0.1:9003"])
    r = run_cutoverd(env, "-t", "-c", path)
    check(r.returncode == 0, "cutoverd -t on a valid config exited %d: %s" % (r.returncode, r.stderr.decode().strip()))


def test_check_valid_config_with_every_issue2_key(env):
    path = os.path.join(env.tmp, "full.conf")
    with open(path, "w") as f:
        f.write('listen = ( { address = "127.0.0.1:18080"; }, { address = "*:18081"; } );\n'
                'workers = 2;\ninitial = "green";\nstate_file = "%s/state";\nlog_level = "debug";\n'
                'pools: { blue: { servers = ( "127.0.0.1:9001" ); };\n'
                '         green: { servers = ( "[::1]:9003", "127.0.0.1:9004" ); }; };\n'
                'limits: { header_size = 8192; header_count = 50; max_connections = 100; };\n'
                'timeouts: { client_header = "250ms"; client_idle = "1m"; connect = "2s"; response = "1h";'
                ' upstream_idle = "30s"; };\n'
                'upstream: { keepalive = 0; };\n' % env.tmp)
    r = run_cutoverd(env, "-t", "-c", path)
    check(r.returncode == 0, "cutoverd -t on a valid full config exited %d: %s" % (r.returncode, r.stderr.decode().strip()))


INVALID = [
    # (line, text, words one of which the message for that line must contain)
    (1, 'listen = ( { address = "127.0.0.1:18080"; } );', None),
    (2, 'initial = "blue";', None),
    (3, 'listne = 5;', ("listne",)),
    (4, 'timeouts: { connect = "5 seconds"; };', ("connect", "duration")),
    (5, 'pools: {', None),
    (6, '  blue: { servers = ( "not-an-address" ); };', ("not-an-address", "address")),
    (7, '  green: { servers = ( "127.0.0.1:9003" ); };', None),
    (8, '};', None),
    (9, 'limits: { header_count = "many"; };', ("header_count",)),
    (10, 'upstream: { keepalive = 1; colour = "red"; };', ("colour",)),
]


def test_check_reports_every_error_with_file_and_line(env):
    path = os.path.join(env.tmp, "bad.conf")
    with open(path, "w") as f:
        f.write("\n".join(t for _, t, _ in INVALID) + "\n")
    r = run_cutoverd(env, "-t", "-c", path)
    check(r.returncode == 1, "cutoverd -t on an invalid config exited %d, expected 1" % r.returncode)
    lines = error_lines(r.stderr) + error_lines(r.stdout)
    for line, text, words in INVALID:
        if words is None:
            continue
        prefix = "%s:%d: " % (path, line)
        mine = [l for l in lines if l.startswith(prefix)]
        check(mine, "no '%s' error for line %d (%s); got: %s" % (prefix, line, text, lines))
        check(any(any(w in l for w in words) for l in mine),
              "error for line %d does not mention %s: %s" % (line, " or ".join(words), mine))
    for l in lines:
        check(re.match(re.escape(path) + r":\d+: \S", l) or re.match(re.escape(path) + r": \S", l),
              "error line not in FILE:LINE: message form: %r" % l)


def test_check_syntax_error(env):
    path = os.path.join(env.tmp, "syntax.conf")
    with open(path, "w") as f:
        f.write('listen = ( { address = "127.0.0.1:18080"; } );\ninitial = "blue"\nworkers = ;\n')
    r = run_cutoverd(env, "-t", "-c", path)
    check(r.returncode == 1, "cutoverd -t on a syntax error exited %d, expected 1" % r.returncode)
    lines = error_lines(r.stderr)
    check(any(re.match(re.escape(path) + r":[23]: \S", l) for l in lines),
          "no FILE:LINE error for the syntax error on line 2-3: %s" % lines)


def test_check_missing_pool(env):
    path = os.path.join(env.tmp, "nopool.conf")
    with open(path, "w") as f:
        f.write('listen = ( { address = "127.0.0.1:18080"; } );\n'
                'pools: { blue: { servers = ( "127.0.0.1:9001" ); }; };\n')
    r = run_cutoverd(env, "-t", "-c", path)
    check(r.returncode == 1, "cutoverd -t without a green pool exited %d, expected 1" % r.returncode)
    lines = error_lines(r.stderr)
    check(any(l.startswith(path + ":") and "green" in l for l in lines),
          "no FILE:... error naming the missing green pool: %s" % lines)


def test_check_missing_file(env):
    path = os.path.join(env.tmp, "does-not-exist.conf")
    r = run_cutoverd(env, "-t", "-c", path)
    check(r.returncode == 1, "cutoverd -t on a missing file exited %d, expected 1" % r.returncode)
    check(path.encode() in r.stderr, "the error does not name the missing file: %r" % r.stderr)


def test_invalid_config_refuses_to_start(env):
    path = os.path.join(env.tmp, "bad.conf")
    with open(path, "w") as f:
        f.write('listen = ( { address = "127.0.0.1:%d"; } );\nlistne = 5;\n'
                'pools: { blue: { servers = ( "127.0.0.1:9001" ); }; green: { servers = ( ); }; };\n' % free_port())
    r = run_cutoverd(env, "-c", path)
    check(r.returncode == 1, "cutoverd with an invalid config exited %d, expected 1" % r.returncode)
    check(b"listne" in r.stderr, "startup error does not name the unknown key: %r" % r.stderr)


def test_address_in_use_exits_1_with_one_line(env):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        path, _ = env.write_config(blue=["127.0.0.1:9001"], green=[], port=port)
        r = run_cutoverd(env, "-c", path)
    finally:
        s.close()
    # Progress lines logged at [info]/[debug] before the failure are fine;
    # the failure itself must be one line naming the address.
    lines = [l for l in error_lines(r.stderr) + error_lines(r.stdout)
             if "[info]" not in l and "[debug]" not in l]
    check(r.returncode == 1, "cutoverd on a used address exited %d, expected 1" % r.returncode)
    check(len(lines) == 1, "expected exactly one failure line, got %d: %s" % (len(lines), lines))
    check(str(port) in lines[0], "the line does not name the address 127.0.0.1:%d: %r" % (port, lines[0]))


def test_version_and_help(env):
    r = run_cutoverd(env, "-V")
    check(r.returncode == 0 and re.search(rb"\d+\.\d+\.\d+", r.stdout + r.stderr),
          "cutoverd -V exited %d with %r" % (r.returncode, r.stdout + r.stderr))
    r = run_cutoverd(env, "-h")
    check(r.returncode == 0 and b"-c" in (r.stdout + r.stderr), "cutoverd -h exited %d with %r" % (r.returncode, r.stdout))
