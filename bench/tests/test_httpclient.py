"""The load client's HTTP/1.1 parsing: what the figures are counted from."""

from bench.httpclient import Answer, Tally, parse_response, request_bytes


def test_whole_response_with_content_length():
    raw = (
        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n"
        b'{"reference":"AB12CD34"}'
    )
    answer, used = parse_response(raw)
    assert (answer.status, used, answer.reference, answer.keep_alive) == (202, len(raw), "AB12CD34", True)


def test_partial_response_waits_for_its_body():
    assert parse_response(b"HTTP/1.1 202 Accepted\r\nContent-Length: 10\r\n\r\n12345") is None
    assert parse_response(b"HTTP/1.1 202 Accepted\r\nContent-Len") is None


def test_refusal_with_retry_after_and_close():
    raw = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    answer, _ = parse_response(raw)
    assert (answer.status, answer.retry_after, answer.keep_alive) == (503, 1.0, False)


def test_chunked_body():
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    answer, used = parse_response(raw)
    assert answer.status == 200 and used == len(raw)


def test_tally_counts_references_and_polite_refusals():
    tally = Tally()
    tally.record(Answer(202, None, b'{"reference":"R1"}'), 0.01)
    tally.record(Answer(503, 1.0), 0.002)
    tally.record(Answer(503, None), 0.002)
    assert list(tally.statuses) == [202, 503, 503]
    assert tally.references == ["R1"] and tally.retry_after == 1


def test_request_bytes_carry_the_idempotency_key_and_length():
    raw = request_bytes(path="/api/v1/orders/", body=b"{}", key="k", idempotency_key="bench-1")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Idempotency-Key: bench-1" in head and b"Content-Length: 2" in head and body == b"{}"
