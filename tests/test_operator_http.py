"""The operator's HTTP server: routing, limits, errors, probes, and no noise on stderr."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from gitops.operator.httpserver import (
    Request,
    Response,
    Server,
    operator_routes,
    parse_addr,
    serve,
)
from gitops.operator.metrics import OperatorMetrics


def fetch(url: str, *, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def seen() -> list[Request]:
    return []


@pytest.fixture
def server(seen: list[Request]) -> Iterator[Server]:
    def echo(request: Request) -> Response:
        seen.append(request)
        return Response(201, request.body[::-1], "application/octet-stream", {"X-Echo": "1"})

    def hello(_: Request) -> Response:
        return Response(200, b"hello")

    def boom(request: Request) -> Response:
        raise RuntimeError("handler broke")

    routes = {("GET", "/hello"): hello, ("POST", "/echo"): echo, ("POST", "/items/"): echo,
              ("PUT", "/items/"): echo, ("POST", "/boom"): boom,
              ("POST", "/items/special"): hello}
    with serve("127.0.0.1:0", routes, name="test", max_body=64) as running:
        yield running


def test_url_and_port_name_the_bound_ephemeral_port(server: Server) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    status, headers, body = fetch(server.url + "/hello")
    assert (status, body) == (200, b"hello")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Length"] == "5"


def test_a_handler_sees_method_path_query_headers_body_and_remote(
        server: Server, seen: list[Request]) -> None:
    status, headers, body = fetch(server.url + "/echo?token=abc", method="POST", body=b"abc",
                                  headers={"X-Custom-Header": "Value"})
    assert (status, body, headers["X-Echo"]) == (201, b"cba", "1")
    request = seen[0]
    assert (request.method, request.path, request.query) == ("POST", "/echo", "token=abc")
    assert request.body == b"abc"
    assert request.remote == "127.0.0.1"
    assert request.headers["x-custom-header"] == "Value"
    assert request.headers["X-CUSTOM-HEADER"] == "Value"
    assert "Value" not in repr(request.headers) and "abc" not in repr(request)


def test_a_prefix_route_takes_every_path_below_it_and_the_longest_match_wins(
        server: Server, seen: list[Request]) -> None:
    assert fetch(server.url + "/items/a/b", method="POST", body=b"x")[0] == 201
    assert seen[-1].path == "/items/a/b"
    assert fetch(server.url + "/items/special", method="POST", body=b"")[2] == b"hello"
    assert fetch(server.url + "/items", method="POST", body=b"")[0] == 404  # not below it


def test_unknown_paths_are_404_and_other_methods_405_with_allow(server: Server) -> None:
    assert fetch(server.url + "/nothing")[0] == 404
    assert fetch(server.url + "/")[0] == 404
    status, headers, _ = fetch(server.url + "/hello", method="POST", body=b"")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    status, headers, _ = fetch(server.url + "/items/x", method="DELETE")
    assert (status, headers["Allow"]) == (405, "POST, PUT")


def test_head_answers_a_get_route_without_a_body(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("HEAD", "/hello")
    response = connection.getresponse()
    assert (response.status, response.getheader("Content-Length")) == (200, "5")
    assert response.read() == b""
    connection.close()


def test_a_body_over_the_cap_is_413_and_never_reaches_the_handler(
        server: Server, seen: list[Request]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.putrequest("POST", "/echo")
    connection.putheader("Content-Length", "65")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    connection.close()
    assert fetch(server.url + "/echo", method="POST", body=b"x" * 64)[0] == 201
    assert len(seen) == 1


@pytest.mark.parametrize(("header", "value", "status"), [
    ("Content-Length", "abc", 400),
    ("Content-Length", "-1", 400),
    ("Transfer-Encoding", "chunked", 411),
])
def test_bad_framing_is_refused(server: Server, seen: list[Request], header: str, value: str,
                                status: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.putrequest("POST", "/echo")
    connection.putheader(header, value)
    connection.endheaders()
    assert connection.getresponse().status == status
    connection.close()
    assert seen == []


def test_a_body_shorter_than_its_length_is_400(server: Server, seen: list[Request]) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.0\r\nContent-Length: 10\r\n\r\nabc")
        sock.shutdown(socket.SHUT_WR)
        answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.0 400")
    assert seen == []


def test_a_handler_that_raises_is_500_logged_without_the_body(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="gitops.operator.httpserver"):
        status, _, body = fetch(server.url + "/boom?password=hunter2", method="POST",
                                body=b"the-request-body")
    assert status == 500
    assert body == b"internal server error\n"
    assert "handler broke" not in body.decode()
    assert "POST /boom" in caplog.text and "handler broke" in caplog.text
    assert "the-request-body" not in caplog.text and "hunter2" not in caplog.text


def test_requests_write_nothing_to_stderr(server: Server, capfd: pytest.CaptureFixture[str]) -> None:
    fetch(server.url + "/hello")
    fetch(server.url + "/nothing")
    fetch(server.url + "/boom", method="POST", body=b"")
    captured = capfd.readouterr()
    assert "GET /hello" not in captured.err and "HTTP/1" not in captured.err


def test_a_slow_handler_does_not_hold_up_other_requests() -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow(_: Request) -> Response:
        entered.set()
        release.wait(5)
        return Response(200, b"slow")

    routes = {("GET", "/slow"): slow, ("GET", "/fast"): lambda _: Response(200, b"fast")}
    with serve("127.0.0.1:0", routes, name="test") as running:
        results: list[bytes] = []
        waiter = threading.Thread(target=lambda: results.append(fetch(running.url + "/slow")[2]))
        waiter.start()
        assert entered.wait(5)
        assert fetch(running.url + "/fast")[2] == b"fast"
        release.set()
        waiter.join(5)
        assert results == [b"slow"]


def test_close_releases_the_port() -> None:
    running = serve("127.0.0.1:0", {("GET", "/x"): lambda _: Response(200)}, name="test")
    port = running.port
    assert fetch(running.url + "/x")[0] == 200
    running.close()
    running.close()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_colon_port_listens_on_every_interface() -> None:
    with serve(":0", {("GET", "/x"): lambda _: Response(200, b"x")}, name="test") as running:
        assert running.url.startswith("http://127.0.0.1:")
        assert fetch(running.url + "/x")[2] == b"x"


def test_a_busy_port_is_an_error_naming_the_address() -> None:
    first = serve("127.0.0.1:0", {}, name="first")
    try:
        with pytest.raises(OSError, match=rf"second server cannot listen on 127.0.0.1:{first.port}"):
            serve(f"127.0.0.1:{first.port}", {}, name="second")
    finally:
        first.close()


@pytest.mark.parametrize(("addr", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    (":9090", ("", 9090)),
    ("localhost:0", ("localhost", 0)),
    ("[::1]:80", ("::1", 80)),
])
def test_parse_addr(addr: str, expected: tuple[str, int]) -> None:
    assert parse_addr(addr) == expected


@pytest.mark.parametrize("addr", ["8080", "host:", "host:http", "::1:80", "h:70000", ""])
def test_parse_addr_refuses_what_is_no_address(addr: str) -> None:
    with pytest.raises(ValueError, match="listen address"):
        parse_addr(addr)


def test_routes_must_be_capitalized_methods_and_absolute_paths() -> None:
    with pytest.raises(ValueError, match="route"):
        serve("127.0.0.1:0", {("get", "/x"): lambda _: Response(200)}, name="test")
    with pytest.raises(ValueError, match="route"):
        serve("127.0.0.1:0", {("GET", "x"): lambda _: Response(200)}, name="test")


def test_operator_routes_serve_probes_and_metrics() -> None:
    ready = threading.Event()
    metrics = OperatorMetrics()
    metrics.source_fetched(0.2)
    with serve("127.0.0.1:0", operator_routes(metrics, ready.is_set), name="metrics") as running:
        assert fetch(running.url + "/healthz")[::2] == (200, b"ok\n")
        assert fetch(running.url + "/readyz")[::2] == (503, b"not ready\n")
        ready.set()
        assert fetch(running.url + "/readyz")[::2] == (200, b"ok\n")
        status, headers, body = fetch(running.url + "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"gitops_source_fetch_duration_seconds_count 1.0" in body
        assert fetch(running.url + "/metrics", method="POST", body=b"")[0] == 405


def test_a_readiness_check_that_raises_is_not_ready(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> bool:
        raise RuntimeError("cannot tell")

    with serve("127.0.0.1:0", operator_routes(OperatorMetrics(), broken), name="m") as running:
        assert fetch(running.url + "/readyz")[0] == 503
    assert "readiness check failed" in caplog.text
