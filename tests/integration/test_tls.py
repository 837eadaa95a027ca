"""TLS through the real binaries (issue 5): termination with SNI and a
default certificate, protocol floor and ALPN, X-Forwarded-Proto, keep-alive
and session resumption, certificate checks by `cutoverd -t` and at startup,
bad input on the TLS port, certificate reload under load (and a bad new
certificate), upstream TLS with verification.

Certificates come from tests/tls/gen-certs.sh (once per run, copied into
each test's directory); helpers live in ops.py.
"""

import json
import os
import signal
import socket
import ssl
import subprocess
import time

import harness
from harness import check, cutoverd_path, fail, http_request, wait_for
from ops import (TLSBackend, TLSConn, TLSLoad, certs, client_ctx, https_get, new_leaf, pair, replace_file,
                 s_client, s_client_protocol, s_client_subject, start_pool_tls, start_tls, wait_closed_raw,
                 wait_log, write_tls_config)
from switching import HEALTH_FAST, EXTRA_DEFAULT


def two_certs(env):
    """b.test first (the default), then a.test/*.wild.test: a name served
    by a shows SNI matching rather than the default."""
    cd = certs(env)
    return cd, [pair(cd, "b"), pair(cd, "a")]


def echo_of(resp):
    check(resp.status == 200, "/echo answered %s, expected 200" % resp.status)
    try:
        return json.loads(resp.body)
    except ValueError:
        fail("/echo body is not JSON: %r" % resp.body[:200])


# --------------------------------------------------------------------------
# SNI, default certificate, curl


def test_sni_picks_certificate_by_name(env):
    b1 = env.backend("b1", "blue")
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, blue=[b1], green=["127.0.0.1:9"], extra=EXTRA_DEFAULT)
    ca = os.path.join(cd, "ca.pem")
    for name, cn in (("a.test", "a.test"), ("b.test", "b.test"), ("x.wild.test", "a.test")):
        r = env.curl("--cacert", ca, "--resolve", "%s:%d:127.0.0.1" % (name, d.port),
                     "-w", "\n%{http_code}", "https://%s:%d/" % (name, d.port))
        out = r.stdout.decode("latin-1")
        check(r.returncode == 0 and out == "b1 blue\n\n200",
              "curl --cacert ca.pem https://%s: exit %d, output %r, stderr %s"
              % (name, r.returncode, out, r.stderr.decode(errors="replace").strip()))
        rc, text = s_client(d.port, servername=name)
        subj = s_client_subject(text)
        check(subj == "CN = %s" % cn, "SNI %s: served certificate subject %r, expected CN = %s" % (name, subj, cn))


def test_unknown_sni_gets_default_certificate(env):
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, blue=[env.backend("b1", "blue")], green=["127.0.0.1:9"], extra=EXTRA_DEFAULT)
    for name in ("unknown.test", "wild.test", None):
        rc, text = s_client(d.port, servername=name) if name else s_client(d.port, "-noservername")
        subj = s_client_subject(text)
        check(subj == "CN = b.test", "SNI %r: served %r, expected the first (default) certificate CN = b.test"
              % (name, subj))


# --------------------------------------------------------------------------
# Protocol versions, ALPN


def test_alpn_http11(env):
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, blue=[env.backend("b1", "blue")], green=["127.0.0.1:9"], extra=EXTRA_DEFAULT)
    rc, text = s_client(d.port, "-alpn", "http/1.1", servername="a.test")
    check("ALPN protocol: http/1.1" in text, "ALPN http/1.1 not negotiated: %s"
          % " | ".join(l for l in text.splitlines() if "ALPN" in l or "error" in l))


def _alpn_lines(text):
    return " | ".join(l for l in text.splitlines() if "ALPN" in l or "error" in l)


def test_alpn_h2_by_default(env):
    """A TLS listener offers h2 by default, preferred whatever the client's
    order, on every certificate's context."""
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, blue=[env.backend("b1", "blue")], green=["127.0.0.1:9"], extra=EXTRA_DEFAULT)
    for offer in ("h2,http/1.1", "http/1.1,h2"):
        for name in ("a.test", "b.test"):
            rc, text = s_client(d.port, "-alpn", offer, servername=name)
            check("ALPN protocol: h2" in text, "-alpn %s to %s: h2 not negotiated: %s"
                  % (offer, name, _alpn_lines(text)))
    rc, text = s_client(d.port, "-alpn", "http/1.1", servername="a.test")
    check("ALPN protocol: http/1.1" in text, "-alpn http/1.1: http/1.1 not negotiated: %s" % _alpn_lines(text))


def test_alpn_http2_off(env):
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, http2=False, blue=[env.backend("b1", "blue")], green=["127.0.0.1:9"],
                     extra=EXTRA_DEFAULT)
    rc, text = s_client(d.port, "-alpn", "h2,http/1.1", servername="a.test")
    check("ALPN protocol: http/1.1" in text, "http2 = false, -alpn h2,http/1.1: http/1.1 not negotiated: %s"
          % _alpn_lines(text))
    rc, text = s_client(d.port, "-alpn", "h2", servername="a.test")
    check("ALPN protocol: h2" not in text, "http2 = false: h2 negotiated: %s" % _alpn_lines(text))


def _proto_refused(text):
    return s_client_protocol(text) is None and "no protocols available" not in text


def test_tls12_minimum_by_default(env):
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, blue=[env.backend("b1", "blue")], green=["127.0.0.1:9"], extra=EXTRA_DEFAULT)
    # SECLEVEL=0 so that the client itself is willing to speak TLS 1.1.
    rc, text = s_client(d.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", servername="a.test")
    check(_proto_refused(text) and "alert protocol version" in text,
          "TLS 1.1 was not refused with a protocol_version alert: protocol %r; %s"
          % (s_client_protocol(text), " | ".join(text.splitlines()[:3])))
    rc, text = s_client(d.port, "-tls1_2", servername="a.test")
    check(s_client_protocol(text) == "TLSv1.2", "TLS 1.2 not accepted: %s" % " | ".join(text.splitlines()[:3]))
    rc, text = s_client(d.port, "-tls1_3", servername="a.test")
    check(s_client_protocol(text) == "TLSv1.3", "TLS 1.3 not accepted: %s" % " | ".join(text.splitlines()[:3]))


def test_min_version_tls13_refuses_tls12(env):
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, min_version="TLSv1.3", blue=[env.backend("b1", "blue")],
                     green=["127.0.0.1:9"], extra=EXTRA_DEFAULT)
    rc, text = s_client(d.port, "-tls1_2", servername="a.test")
    check(_proto_refused(text), "min_version TLSv1.3: TLS 1.2 was accepted (%r)" % s_client_protocol(text))
    rc, text = s_client(d.port, "-tls1_3", servername="a.test")
    check(s_client_protocol(text) == "TLSv1.3", "min_version TLSv1.3: TLS 1.3 not accepted: %s"
          % " | ".join(text.splitlines()[:3]))


# --------------------------------------------------------------------------
# Proxying over TLS


def test_forwarded_proto_https_and_keepalive(env):
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, blue=[env.backend("b1", "blue")], green=["127.0.0.1:9"], extra=EXTRA_DEFAULT)
    ctx = client_ctx(os.path.join(cd, "ca.pem"))
    with TLSConn(d.port, ctx, "a.test") as c:
        check(c.sock.selected_alpn_protocol() is None, "ALPN chosen though the client offered none")
        for i in range(6):
            r = c.request("/echo?n=%d" % i, host="a.test")
            e = echo_of(r)
            xfp = [v for k, v in e["headers"] if k.lower() == "x-forwarded-proto"]
            check(xfp == ["https"], "request %d over TLS reached the backend with X-Forwarded-Proto %r" % (i, xfp))
            check(e["uri"] == "/echo?n=%d" % i, "request %d: backend saw %r" % (i, e["uri"]))
            check(not r.has_token("Connection", "close"), "request %d: proxy closed the keep-alive TLS connection" % i)


def test_session_resumption(env):
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, blue=[env.backend("b1", "blue")], green=["127.0.0.1:9"], extra=EXTRA_DEFAULT)
    # A whole request with Connection: close and -ign_eof: s_client reads
    # until the server closes, so TLS 1.3 tickets (sent after the handshake)
    # are not lost to s_client quitting at the end of its input.
    req = http_request("GET", "/", host="a.test", headers=[("Connection", "close")])
    for proto in ("-tls1_2", "-tls1_3"):
        sess = os.path.join(env.tmp, "sess%s.pem" % proto)
        rc, text = s_client(d.port, proto, "-ign_eof", "-sess_out", sess, servername="a.test", stdin=req)
        check("b1 blue" in text, "%s: the request over s_client was not answered: %s" % (proto, text[-300:]))
        check(text.count("\nNew, TLSv") == 1 and os.path.exists(sess),
              "%s: first handshake did not give a session: %s" % (proto, " | ".join(text.splitlines()[:3])))
        rc, text = s_client(d.port, proto, "-sess_in", sess, servername="a.test")
        check("\nReused, TLSv" in text, "%s: session not resumed on the second connection: %s"
              % (proto, [l for l in text.splitlines() if l.startswith(("New,", "Reused,"))]))


# --------------------------------------------------------------------------
# Certificate checks: cutoverd -t and startup


def _bad_cert_case(env, cert_pairs, words, ciphers=None, name_file=True):
    path, port = write_tls_config(env, cert_pairs, blue=["127.0.0.1:9"], green=["127.0.0.1:9"], ciphers=ciphers)
    r = env.run([cutoverd_path(), "-t", "-c", path], timeout=20)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    lines = [l for l in out.splitlines() if l.strip()]
    check(r.returncode == 1, "cutoverd -t exited %d, expected 1: %s" % (r.returncode, lines))
    mine = [l for l in lines if l.startswith(path + ":") and all(w in l for w in words)]
    check(mine, "cutoverd -t printed no '%s:LINE: ...' error mentioning %s: %s" % (path, words, lines))
    check(all(l.startswith(path + ":") for l in lines), "cutoverd -t printed a line not in FILE:LINE: form: %s"
          % lines)
    # Startup fails too, with one line naming the cause, and never listens.
    p = subprocess.Popen([cutoverd_path(), "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        so, se = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        fail("cutoverd started with a bad certificate configuration (still running after 15s)")
    text = (so + se).decode("utf-8", "replace")
    check(p.returncode == 1, "startup exited %s, expected 1: %s" % (p.returncode, text.strip()))
    check(any(all(w in l for w in words) for l in text.splitlines()),
          "startup failure does not name %s: %s" % (words, text.strip()))
    check(not harness.port_accepts(port), "something listens on the port of the failed cutoverd")


def test_check_missing_certificate(env):
    cd = certs(env)
    missing = os.path.join(cd, "nonexistent.pem")
    _bad_cert_case(env, [(missing, os.path.join(cd, "a.key"))], [missing])


def test_check_mismatched_key(env):
    cd = certs(env)
    _bad_cert_case(env, [pair(cd, "a"), pair(cd, "mismatch", key="b")],
                   [os.path.join(cd, "mismatch.pem"), os.path.join(cd, "b.key")])


def test_check_expired_certificate(env):
    cd = certs(env)
    _bad_cert_case(env, [pair(cd, "expired")], [os.path.join(cd, "expired.pem"), "expired"])


def test_check_not_yet_valid_certificate(env):
    cd = certs(env)
    _bad_cert_case(env, [pair(cd, "notyet")], [os.path.join(cd, "notyet.pem")])


def test_check_bad_cipher_string(env):
    cd = certs(env)
    _bad_cert_case(env, [pair(cd, "a")], ["NOT-A-CIPHER"], ciphers="NOT-A-CIPHER:ALSO-NOT")


# --------------------------------------------------------------------------
# Bad input on the TLS port


def _tls_with_recording_upstream(env, handshake="1s"):
    up = env.raw_backend()
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, blue=[up.addr], green=["127.0.0.1:9"], extra=EXTRA_DEFAULT,
                     timeouts={"handshake": handshake})
    return d, up, client_ctx(os.path.join(cd, "ca.pem"))


def _still_serves(d, ctx, up, what):
    r, _, _ = https_get(d.port, ctx, "a.test", "/after")
    check(r.status == 200 and r.body == b"ok", "after %s: HTTPS request answered %s %r" % (what, r.status, r.body))
    check([q.target for q in up.all_requests()] == ["/after"],
          "after %s the upstream saw %r, expected only /after" % (what, [q.target for q in up.all_requests()]))


def test_plaintext_request_on_tls_port(env):
    d, up, ctx = _tls_with_recording_upstream(env)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    try:
        s.sendall(http_request("GET", "/plain", host="a.test"))
        closed, got, secs = wait_closed_raw(s, 5)
    finally:
        s.close()
    check(closed, "a plaintext request on the TLS port was not closed within 5s")
    check(not got.startswith(b"HTTP/"), "a plaintext request on the TLS port got an HTTP answer %r" % got[:60])
    check(up.conns == [], "a plaintext request on the TLS port reached the upstream (%d connections)"
          % len(up.conns))
    _still_serves(d, ctx, up, "a plaintext request")


def test_handshake_garbage(env):
    d, up, ctx = _tls_with_recording_upstream(env)
    for junk in (b"\x16\x03\x01\x00\x10" + bytes(range(16)),  # a handshake record that is no ClientHello
                 b"\x16\x03\x03\xff\xff" + b"\xee" * 4000,       # oversized record
                 bytes((i * 37 + 11) & 0xFF for i in range(2048))):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        try:
            try:
                s.sendall(junk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            closed, got, secs = wait_closed_raw(s, 5)
        finally:
            s.close()
        check(closed, "handshake garbage %r... was not closed within 5s" % junk[:8])
        check(secs < 0.9, "handshake garbage %r... closed only after %.2fs (by the timeout, not the parser)"
              % (junk[:8], secs))
    check(up.conns == [], "handshake garbage reached the upstream (%d connections)" % len(up.conns))
    _still_serves(d, ctx, up, "handshake garbage")


def test_stalled_handshake_closed_after_timeout(env):
    d, up, ctx = _tls_with_recording_upstream(env, handshake="1s")
    # One client says nothing at all, one stops after half a ClientHello.
    hello = bytearray()
    probe = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(probe[0], probe[1], server_hostname="a.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello += probe[1].read()
    check(len(hello) > 100, "could not build a ClientHello (%d bytes)" % len(hello))
    socks = []
    for first in (b"", bytes(hello[:len(hello) // 2])):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        if first:
            s.sendall(first)
        socks.append((s, time.monotonic()))
    # Meanwhile the daemon serves others.
    r, _, _ = https_get(d.port, ctx, "a.test", "/during")
    check(r.status == 200, "while two handshakes stall, an HTTPS request answered %s" % r.status)
    for i, (s, t0) in enumerate(socks):
        try:
            closed, got, _ = wait_closed_raw(s, 6)
        finally:
            s.close()
        secs = time.monotonic() - t0
        check(closed, "stalled handshake %d not closed within 6s (timeouts.handshake = 1s)" % i)
        check(0.8 <= secs <= 3.0, "stalled handshake %d closed after %.2fs, expected about 1s" % (i, secs))
    check([q.target for q in up.all_requests()] == ["/during"],
          "stalled handshakes reached the upstream: %r" % [q.target for q in up.all_requests()])
    r, _, _ = https_get(d.port, ctx, "a.test", "/after")
    check(r.status == 200, "after stalled handshakes, an HTTPS request answered %s" % r.status)


# --------------------------------------------------------------------------
# Certificate reload


def test_certificate_reload_under_load(env):
    cd, cp = two_certs(env)
    d, _ = start_tls(env, cp, blue=[env.backend("b1", "blue")], green=["127.0.0.1:9"], extra=EXTRA_DEFAULT)
    ctx = client_ctx(os.path.join(cd, "ca.pem"))
    _, old_serial, old_subj = https_get(d.port, ctx, "a.test")
    new_serial = 4242
    new_leaf(cd, "a2", "a.test", "rotated", new_serial)
    load = TLSLoad(d.port, ctx, "a.test", fresh=2, keepalive=2).start()
    try:
        wait_for(lambda: load.count("fresh") >= 30 and load.count("keepalive") >= 30, 30,
                 "30 fresh and 30 keep-alive HTTPS requests before the reload")
        replace_file(os.path.join(cd, "a2.key"), os.path.join(cd, "a.key"))
        replace_file(os.path.join(cd, "a2.pem"), os.path.join(cd, "a.pem"))
        log_at = len(d.log_text())
        t_hup = time.monotonic()
        d.proc.send_signal(signal.SIGHUP)
        wait_log(d, r"reload: configuration .* applied", start=log_at)
        wait_for(lambda: https_get(d.port, ctx, "a.test")[1] != old_serial, 10,
                 "a new connection to see the new certificate")
        t_new = time.monotonic()
        wait_for(lambda: load.count("fresh", since=t_new) >= 30 and load.count("keepalive", since=t_new) >= 30,
                 30, "30 more fresh and keep-alive requests after the reload")
    finally:
        records = load.stop()
    failed = [r for r in records if r[3] != 200]
    check(not failed, "%d of %d HTTPS requests failed across the certificate reload, e.g. %s"
          % (len(failed), len(records), failed[:3]))
    fresh_after = [r for r in records if r[2] == "fresh" and r[0] >= t_new]
    check(fresh_after and all(r[4] == "%X" % new_serial for r in fresh_after),
          "new connections after the reload were served serials %s, expected %X"
          % (sorted(set(r[4] for r in fresh_after)), new_serial))
    check(any(r[4] == old_serial for r in records if r[0] < t_hup), "no request saw the old certificate")
    check(load.ka_connections == 2, "keep-alive clients needed %d connections instead of 2: the reload "
          "dropped established TLS connections" % load.ka_connections)
    _, serial, subj = https_get(d.port, ctx, "a.test")
    check(subj.get("organizationName") == "rotated" and old_subj.get("organizationName") is None,
          "subject before %s, after %s: expected O=rotated only after" % (old_subj, subj))
    _, _, subj_b = https_get(d.port, ctx, "b.test")
    check(subj_b.get("commonName") == "b.test", "b.test after the reload served %s" % subj_b)


def _bad_cert_setup(env):
    cd, cp = two_certs(env)
    d, ctl = start_tls(env, cp, blue=[env.backend("b1", "blue")], green=["127.0.0.1:9"], extra=EXTRA_DEFAULT,
                       expect_errors=[r"reload rejected"])
    ctx = client_ctx(os.path.join(cd, "ca.pem"))
    _, old_serial, _ = https_get(d.port, ctx, "a.test")
    established = TLSConn(d.port, ctx, "a.test")
    env.closers.append(established)
    check(established.request("/", host="a.test").status == 200, "first request on the kept connection failed")
    with open(os.path.join(cd, "a.pem"), "w") as f:
        f.write("this is not a certificate\n")
    return cd, d, ctl, ctx, old_serial, established


def _old_cert_still_serves(d, ctx, old_serial, established, what):
    r, serial, _ = https_get(d.port, ctx, "a.test")
    check(r.status == 200 and serial == old_serial,
          "after %s: new connection got %s with serial %s, expected 200 with the old %s"
          % (what, r.status, serial, old_serial))
    r = established.request("/", host="a.test")
    check(r.status == 200, "after %s: the established TLS connection answered %s" % (what, r.status))


def test_bad_certificate_sighup_keeps_old(env):
    cd, d, ctl, ctx, old_serial, established = _bad_cert_setup(env)
    log_at = len(d.log_text())
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, r"\[error\] reload rejected: .*a\.pem", start=log_at)
    check("applied" not in d.log_text()[log_at:], "the bad certificate reload was applied: %s" % d.log_tail())
    _old_cert_still_serves(d, ctx, old_serial, established, "a rejected SIGHUP")


def test_bad_certificate_cutoverctl_reload(env):
    cd, d, ctl, ctx, old_serial, established = _bad_cert_setup(env)
    r = ctl.run("reload", as_json=False)
    check(r.rc == 1, "cutoverctl reload with a bad certificate exited %s, expected 1: %r" % (r.rc, r))
    apem = os.path.join(cd, "a.pem")
    check(any(apem in l and l.strip().startswith(d.conf_path + ":") for l in r.err.splitlines()),
          "cutoverctl reload did not print a FILE:LINE: error naming %s: %r" % (apem, r.err))
    _old_cert_still_serves(d, ctx, old_serial, established, "a rejected cutoverctl reload")


# --------------------------------------------------------------------------
# Upstream TLS


def _upstream_tls(env, ca, fall=2):
    """A TLS upstream as the only blue server, pools.blue.tls verifying it
    against ca with SNI up.test."""
    cd = certs(env)
    up = TLSBackend(env, *pair(cd, "up"))
    health = HEALTH_FAST.replace("fall = 2;", "fall = %d;" % fall)
    check(("fall = %d;" % fall) in health, "unexpected HEALTH_FAST layout")
    d, ctl = start_pool_tls(env, [up.addr], ["127.0.0.1:9"],
                            'tls = { verify = true; ca = "%s"; sni = "up.test"; };' % os.path.join(cd, ca),
                            extra=EXTRA_DEFAULT.replace(HEALTH_FAST, health))
    return d, ctl, up


def test_upstream_tls_verified(env):
    d, ctl, up = _upstream_tls(env, "ca.pem")
    ctl.wait_confirmed("blue")
    for i in range(3):
        r = d.get("/tls/%d" % i)
        check(r.status == 200 and r.body == b"tls1 blue\n",
              "request %d through upstream TLS answered %s %r" % (i, r.status, r.body))
    check(up.handshake_errors == [], "TLS upstream saw failed handshakes: %s" % up.handshake_errors[:3])
    check(up.health_checks >= 2, "health checks did not reach the TLS upstream (%d)" % up.health_checks)
    check(set(up.snis) == {"up.test"}, "cutoverd sent SNI %r, expected only up.test" % sorted(map(str, set(up.snis))))
    check(up.requests == ["/tls/0", "/tls/1", "/tls/2"], "TLS upstream saw %r" % up.requests)


def test_upstream_tls_wrong_ca_refused(env):
    # fall is high so the server stays "up": requests really try the
    # handshake (502) instead of being refused for health (503).
    d, ctl, up = _upstream_tls(env, "ca2.pem", fall=1000)
    wait_for(lambda: len(up.handshake_errors) >= 2, 10, "two failed health-check handshakes")
    h = ctl.health("blue")[0]
    check(h["passes"] == 0 and h["failures"] >= 1 and not h["confirmed"],
          "health checks against an upstream with a certificate from another CA: %s" % h)
    for i in range(3):
        r = d.get("/wrong/%d" % i)
        check(r.status == 502, "request %d to an upstream with an untrusted certificate answered %s %r, "
              "expected 502" % (i, r.status, r.body))
    check(up.requests == [], "requests reached the upstream despite the failed verification: %r" % up.requests)
    check(d.proc.poll() is None, "cutoverd died")
    r = ctl.run("status")
    check(r.rc == 0, "status after the refused upstream handshakes: %r" % r)
