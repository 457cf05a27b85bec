"""The open loop's schedule: processes together send every request once, evenly spaced."""

import pytest

from bench.httpclient import due_count, schedule_share, scheduled_at


@pytest.mark.parametrize(("total", "processes"), [(0, 2), (1, 2), (7, 3), (8000 * 15, 2), (10, 16)])
def test_shares_add_up_to_the_total(total, processes):
    assert sum(schedule_share(total=total, processes=processes, index=i) for i in range(processes)) == total


def test_merged_schedule_is_evenly_spaced():
    rate, processes, total = 400.0, 3, 1000
    times = sorted(
        scheduled_at(k=k, rate=rate, processes=processes, index=i)
        for i in range(processes)
        for k in range(schedule_share(total=total, processes=processes, index=i))
    )
    assert len(times) == total
    assert times[0] == 0.0
    gaps = {round(b - a, 9) for a, b in zip(times, times[1:], strict=False)}
    assert gaps == {round(1 / rate, 9)}


def test_due_count_follows_the_schedule():
    rate, processes, index = 100.0, 2, 1
    share = schedule_share(total=1000, processes=processes, index=index)
    # Process 1 owns requests 1, 3, 5, ... due at 0.01 s, 0.03 s, 0.05 s, ...
    assert due_count(elapsed=0.0, rate=rate, processes=processes, index=index, share=share) == 0
    assert due_count(elapsed=0.0101, rate=rate, processes=processes, index=index, share=share) == 1
    assert due_count(elapsed=0.0299, rate=rate, processes=processes, index=index, share=share) == 1
    assert due_count(elapsed=0.0301, rate=rate, processes=processes, index=index, share=share) == 2
    assert due_count(elapsed=1e6, rate=rate, processes=processes, index=index, share=share) == share


def test_every_request_is_due_by_its_scheduled_time():
    rate, processes = 8000.0, 2
    for index in range(processes):
        share = schedule_share(total=5000, processes=processes, index=index)
        for k in (0, 1, share // 2, share - 1):
            at = scheduled_at(k=k, rate=rate, processes=processes, index=index)
            assert (
                due_count(elapsed=at + 1e-9, rate=rate, processes=processes, index=index, share=share)
                >= k + 1
            )
